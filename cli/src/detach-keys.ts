/**
 * Docker's detach keys: typed on an attached terminal (`sbx run -it`, `sbx attach`), the sequence
 * (ctrl-p,ctrl-q by default) detaches the client and leaves the job running. `--detach-keys` takes
 * Docker's format: comma-separated keys, each a single character or `ctrl-<c>` with c one of a-z @
 * [ \ ] ^ _; an empty value turns detaching off. A byte that breaks a partial match goes to the
 * job together with the bytes held for it (ctrl-p then `a` sends both), as Docker does.
 */
export const DEFAULT_DETACH_KEYS = 'ctrl-p,ctrl-q';

/** The bytes of a detach sequence; null = no detaching (empty value). Throws with a usage message. */
export function parseDetachKeys(spec: string): Buffer | null {
  if (spec === '') return null;
  const bytes = spec.split(',').map((key) => {
    const k = key.trim();
    const ctrl = /^ctrl-(.)$/i.exec(k);
    if (ctrl) {
      const c = ctrl[1]!.toLowerCase();
      if (c >= 'a' && c <= 'z') return c.charCodeAt(0) - 0x60;
      const special = '@[\\]^_'.indexOf(c);
      if (special >= 0) return special === 0 ? 0 : 0x1a + special;
    } else if (k.length === 1 && k.charCodeAt(0) < 0x80) {
      return k.charCodeAt(0);
    }
    throw new Error(`invalid detach key ${JSON.stringify(k)}: use a single character or ctrl-<a-z @ [ \\ ] ^ _>, comma-separated (e.g. ${DEFAULT_DETACH_KEYS})`);
  });
  return Buffer.from(bytes);
}

/** Watches what is typed for the detach sequence, across chunks. */
export class DetachWatch {
  /** How many bytes of the sequence the input ends with (held back until the match ends one way or the other). */
  private held = 0;

  constructor(private readonly seq: Buffer) {}

  /** What of `chunk` goes to the job, and whether the sequence was completed (the rest of the chunk is dropped). */
  feed(chunk: Buffer): { pass: Buffer; detached: boolean } {
    const out: number[] = [];
    for (const b of chunk) {
      if (b !== this.seq[this.held] && this.held > 0) {
        for (let i = 0; i < this.held; i++) out.push(this.seq[i]!);
        this.held = 0;
      }
      if (b === this.seq[this.held]) {
        this.held++;
        if (this.held === this.seq.length) {
          this.held = 0;
          return { pass: Buffer.from(out), detached: true };
        }
      } else {
        out.push(b);
      }
    }
    return { pass: Buffer.from(out), detached: false };
  }
}
