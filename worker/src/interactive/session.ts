/**
 * The worker's half of an interactive job (openStdin / tty): frames from attached clients arrive
 * through the job's stdin stream (core/src/stdin-stream.ts) and are applied in order — bytes to the
 * terminal or the stdin pipe (awaited, so a job that does not read holds its writers back), EOF,
 * window sizes, signals — and the terminal's output goes to the job's output sink as `stdout`, so
 * SSE and logs replay it like any job's. The idle limit ends the job (`timeout`, idle_timeout)
 * once no client has been attached and nothing has been written for limits.idleTimeoutMs.
 */
import { createHash } from 'node:crypto';
import os from 'node:os';
import { finished } from 'node:stream/promises';
import type { JobSpec } from '../../../core/src/job-spec.ts';
import type { StreamDigest } from '../../../core/src/receipts/job-receipt.ts';
import type { JobStore } from '../../../core/src/job-store.ts';
import type { Logger } from '../../../core/src/logger.ts';
import { StdinReader, type StdinFrame, type UnreadFrame } from '../../../core/src/stdin-stream.ts';
import type { Launched, LaunchSpec } from '../../../native/index.ts';
import type { RedisOutputSink } from '../output/redis-sink.ts';

const DRAIN_MS = 2000;

export const IDLE_END = {
  status: 'timeout' as const,
  error: { code: 'idle_timeout', message: 'nothing was attached to this interactive job and nothing written to its stdin for limits.idleTimeoutMs' },
};

export function isInteractive(spec: JobSpec): boolean {
  return !!(spec.openStdin || spec.tty);
}

/** The launch spec of an interactive job: open stdin, a terminal of the requested size. */
export function withInteractive(launch: LaunchSpec, spec: JobSpec): LaunchSpec {
  if (!isInteractive(spec)) return launch;
  const size = spec.ttySize ?? { rows: 24, cols: 80 };
  return { ...launch, openStdin: !!spec.openStdin, tty: spec.tty ? { rows: size.rows, cols: size.cols } : null };
}

export interface InteractiveSession {
  /** The job was ended by its idle limit. */
  readonly idledOut: boolean;
  /** After the job exited: the terminal's output drained into the sink, frames no longer read, stream removed. */
  stop(): Promise<void>;
  /**
   * What the job was given, for its receipt: its stdin (the request's, then every byte written to
   * it through attach, in order) and how many signals attach sent it. Read after stop().
   */
  input(): InteractiveInput;
}

export interface InteractiveInput {
  stdin: StreamDigest;
  signals: number;
}

/** Size and SHA-256 of the bytes given to a job's stdin, as they are given. */
class InputDigest {
  private readonly hash = createHash('sha256');
  private bytes = 0;
  add(data: Buffer | string): void {
    this.hash.update(data);
    this.bytes += Buffer.byteLength(data);
  }
  digest(): StreamDigest {
    return { bytes: this.bytes, sha256: this.hash.copy().digest('hex') };
  }
}

export function startInteractive(store: JobStore, spec: JobSpec, launched: Launched, sink: RedisOutputSink, logger: Logger): InteractiveSession | null {
  if (!isInteractive(spec)) return null;
  const reader = new StdinReader(store.redis, store.keys, spec.id);
  const ttyDrained = launched.tty ? sink.attach('stdout', launched.tty.output) : Promise.resolve();
  // A tty without openStdin (`docker run -t`) gets no input but its `stdin`, written by the launcher:
  // then EOF, as a job without a tty gets its stdin and then EOF, instead of a read waiting until the timeout.
  if (launched.tty && !spec.openStdin) void launched.tty.end();
  const given = new InputDigest();
  if (spec.stdin) given.add(spec.stdin); // the launcher wrote it first
  let signals = 0;
  let idledOut = false;
  const idleMs = spec.limits.idleTimeoutMs ?? null;
  let idleTimer: NodeJS.Timeout | undefined;
  // A frame being written (the job not reading it yet) is input under way, not idleness: the frames
  // behind it, attached clients' heartbeats among them, wait for it (before: an attached job that
  // read slowly ended idle_timeout).
  let applying = false;
  const touch = (): void => {
    if (idleMs === null) return;
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => {
      if (applying) return touch();
      idledOut = true;
      launched.stop(); // a limit: output files are still collected
    }, idleMs);
  };
  touch();
  void launched.exited.then(() => clearTimeout(idleTimer));
  const running = reader.run(async (f) => {
    touch();
    applying = true;
    try {
      if (await apply(launched, f)) {
        if (f.type === 'data') given.add(f.data);
        else if (f.type === 'signal') signals++;
      }
    } finally {
      applying = false;
      touch();
    }
  }, unreadLog(logger, spec.id));
  let stopping: Promise<void> | null = null;
  return {
    get idledOut() { return idledOut; },
    input: () => ({ stdin: given.digest(), signals }),
    stop() {
      stopping ??= (async () => {
        clearTimeout(idleTimer);
        await reader.stop();
        await running.catch(() => {});
        if (launched.tty) {
          const t = setTimeout(() => launched.tty!.output.destroy(), DRAIN_MS);
          await ttyDrained;
          clearTimeout(t);
        }
        launched.stdin?.destroy();
      })();
      return stopping;
    },
  };
}

/**
 * Frames this worker cannot read (an API copy of a newer version writes a type it does not know, or
 * a payload it cannot parse) are dropped, and said once per job and type: the client's input did
 * not reach the job, and the operator should know why (before: dropped without a word).
 */
function unreadLog(logger: Logger, jobId: string): (f: UnreadFrame) => void {
  const said = new Set<string>();
  return ({ type, bytes }) => {
    if (said.has(type)) return;
    said.add(type);
    logger.warn({ jobId, frameType: type, bytes }, 'an attached client\'s frame this worker cannot read was dropped (a newer API version\'s frame type, or a malformed one); later ones of this type are dropped without a word');
  };
}

/** Applies a frame to the job; true when its bytes were written, or its signal sent. */
async function apply(launched: Launched, f: StdinFrame): Promise<boolean> {
  switch (f.type) {
    case 'data':
      if (launched.tty) {
        await launched.tty.write(f.data);
        return true;
      }
      return writePipe(launched, f.data);
    case 'eof':
      if (launched.tty) await launched.tty.end();
      else launched.stdin?.end();
      return false;
    case 'resize':
      launched.tty?.resize(f.rows, f.cols);
      return false;
    case 'signal':
      return f.signal in os.constants.signals && launched.signal(f.signal as NodeJS.Signals);
    case 'attached':
      return false;
  }
}

/** Writes to the job's stdin pipe; false when it was already closed (nothing written). */
async function writePipe(launched: Launched, data: Buffer): Promise<boolean> {
  const s = launched.stdin;
  if (!s || s.destroyed || s.writableEnded) return false;
  if (s.write(data)) return true;
  // Wait for the job to read (or for the pipe to close: EPIPE when it stopped reading)
  await Promise.race([new Promise<void>((res) => s.once('drain', res)), finished(s).catch(() => {})]);
  return true;
}
