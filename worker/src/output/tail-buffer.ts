/**
 * The last `size` bytes written to it (limits.outputTailBytes of one stream): chunks are kept as
 * they came, and whole chunks are let go once the rest holds `size` without them, so it holds at
 * most `size` bytes plus one chunk (a pipe read, at most 64 KiB).
 */
export class TailBuffer {
  private chunks: Buffer[] = [];
  private held = 0;

  constructor(private readonly size: number) {}

  write(buf: Buffer): void {
    if (this.size === 0 || buf.length === 0) return;
    this.chunks.push(buf);
    this.held += buf.length;
    while (this.held - this.chunks[0]!.length >= this.size) this.held -= this.chunks.shift()!.length;
  }

  /** The last `size` bytes (fewer if fewer were written), emptying the buffer. */
  take(): Buffer {
    const all = Buffer.concat(this.chunks, this.held);
    this.chunks = [];
    this.held = 0;
    return all.length > this.size ? all.subarray(all.length - this.size) : all;
  }
}

/** `buf` from its first byte that starts a UTF-8 character: a tail cut in the middle of one does not begin with U+FFFD. */
export function fromCharStart(buf: Buffer): Buffer {
  let i = 0;
  while (i < buf.length && i < 3 && (buf[i]! & 0xc0) === 0x80) i++;
  return buf.subarray(i);
}
