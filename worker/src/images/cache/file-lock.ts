/**
 * A cross-process lock on a file path (Node has no flock): the holder creates the file with O_EXCL
 * and refreshes its mtime while it works; waiters poll. A lock is stale when its holder process is
 * gone (same host) or its heartbeat stopped. Used so that several workers sharing one image cache
 * download a layer once; correctness never depends on it (commits are atomic renames).
 */
import { setTimeout as delay } from 'node:timers/promises';
import { hostname } from 'node:os';
import { open, readFile, rm, utimes, stat } from 'node:fs/promises';
import { processGone, SELF_START } from '../../process-alive.ts';

export interface FileLockOptions {
  signal?: AbortSignal;
  pollMs?: number;
  /** A lock whose heartbeat is older than this is broken. */
  staleMs?: number;
}

const HOST = hostname();

async function isStale(path: string, staleMs: number): Promise<boolean> {
  try {
    const [text, st] = await Promise.all([readFile(path, 'utf8'), stat(path)]);
    // pid, host, when, and (since it was written) the holder's start time: a pid reused since (a
    // container's worker is pid 1 after every restart) is not the holder.
    const [pid, host, , start] = text.split('\n');
    if (host === HOST && pid && processGone(Number(pid), start ? start : null)) return true;
    return Date.now() - st.mtimeMs > staleMs;
  } catch (e) {
    // Vanished between our attempt and now: not stale, just retry.
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

async function tryCreate(path: string): Promise<boolean> {
  try {
    const file = await open(path, 'wx', 0o600);
    await file.writeFile(`${process.pid}\n${HOST}\n${new Date().toISOString()}\n${SELF_START ?? ''}\n`);
    await file.close();
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
}

/** Waits `ms`; an abort rejects with the signal's reason (and, unlike a hand-made timer, leaves no listener behind). */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return delay(ms, undefined, signal ? { signal } : {}).catch((e: unknown) => {
    throw signal?.reason ?? e;
  });
}

/** Runs `fn` while holding the lock at `path`. */
export async function withFileLock<T>(path: string, fn: () => Promise<T>, opts: FileLockOptions = {}): Promise<T> {
  const staleMs = opts.staleMs ?? 30_000;
  while (!(await tryCreate(path))) {
    if (await isStale(path, staleMs)) {
      await rm(path, { force: true });
      continue;
    }
    await sleep(opts.pollMs ?? 50, opts.signal);
  }
  const heartbeat = setInterval(() => {
    const now = new Date();
    utimes(path, now, now).catch(() => {});
  }, Math.max(1000, staleMs / 3));
  heartbeat.unref();
  try {
    return await fn();
  } finally {
    clearInterval(heartbeat);
    await rm(path, { force: true });
  }
}
