/**
 * Redis replies that mean "not now" rather than "wrong request", by the reply's error code (the first
 * word of a RESP error, part of the protocol), and a way for a worker's writes to wait them out.
 *
 * The worker's connection waits for Redis to be back when it is down (core/src/redis.ts
 * `waitWhileDown`), but a Redis that answers "not now" (full: `OOM command not allowed when used
 * memory > 'maxmemory'`, loading, a Cluster resharding, a script blocking it) answers at once, and
 * ioredis hands the error to the caller. Before, a worker that met one on a job's output or on its
 * end gave the job up: the output written after it was dropped, the end was never recorded, and the
 * job stayed `running` for its whole record TTL after Redis had room again.
 *
 * A refused script wrote nothing: Redis decides whether it is full once, before the script runs,
 * and refuses a command that may grow memory only while the script has written nothing yet (once
 * it has, the rest runs: Redis does not stop a script half-way). So a script refused with OOM is
 * sent again as it was (appends keep their number: appendOutput-2.lua).
 */
import { ReplyError } from 'ioredis';

/**
 * Loading its data set, a replica without its master, a Cluster that is down or resharding, a
 * script or module call blocking the server, its memory full (maxmemory reached under noeviction:
 * writes refused until jobs' records expire, memory is freed or maxmemory is raised).
 */
export const NOT_NOW_REPLIES: ReadonlySet<string> = new Set(['LOADING', 'MASTERDOWN', 'CLUSTERDOWN', 'TRYAGAIN', 'BUSY', 'OOM']);

/** The reply's error code, e.g. 'OOM'; null for anything that is not a Redis reply. */
export function replyCode(err: unknown): string | null {
  return err instanceof ReplyError ? ((err as Error).message.split(' ', 1)[0] ?? '') : null;
}

/** Whether `err` is a reply of Redis meaning "not now" (NOT_NOW_REPLIES). */
export function isNotNowReply(err: unknown): boolean {
  return NOT_NOW_REPLIES.has(replyCode(err) ?? '');
}

/** What the caller is told while it waits: the reply, how many tries so far. */
export type NotNowListener = (err: Error, tries: number) => void;

export interface UntilTakenOptions {
  /** Told of each refusal (a log line for the first, say). */
  onRefused?: NotNowListener;
  /** Before sending again (after the wait): e.g. a write that must land first. */
  beforeRetry?: () => Promise<unknown>;
  /** The longest wait between two tries; they back off from 100 ms. */
  maxDelayMs?: number;
}

/**
 * `send()` until Redis takes it: sent again, backing off from 100 ms to `maxDelayMs` (2 s), while it
 * is refused with a "not now" reply; any other error is thrown at once. For writes whose loss loses
 * a job's outcome or output (the worker's), which would rather wait, as they do while Redis is down.
 */
export async function untilRedisTakes<T>(send: () => Promise<T>, opts: UntilTakenOptions = {}): Promise<T> {
  const cap = opts.maxDelayMs ?? 2000;
  for (let tries = 1; ; tries++) {
    try {
      return await send();
    } catch (e) {
      if (!isNotNowReply(e)) throw e;
      opts.onRefused?.(e as Error, tries);
      await new Promise((r) => setTimeout(r, Math.min(cap, 100 * 2 ** Math.min(tries - 1, 5))));
      await opts.beforeRetry?.().catch(() => {});
    }
  }
}
