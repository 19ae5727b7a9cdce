/**
 * Public entry point for unpacking one layer blob stream into a fresh directory. By default the work
 * (decompression, tar parsing, file writes) runs in the shared unpack worker pool, so layers unpack
 * in parallel on several cores; `inThread: true` runs it here (tests, tools). Either way the promise
 * settles only once nothing writes to `targetDir` any more, and it rejects if the source fails (a
 * digest mismatch is reported at the end of the source), so the caller may commit or delete it.
 */
import type { Readable } from 'node:stream';
import { abortReason, DEFAULT_UNPACK_LIMITS, extractLayer, type ExtractOptions, type UnpackLimits, type UnpackResult } from './layer-extract.ts';
import type { Requester } from '../tenant-shares.ts';
import { sharedUnpackPool, type UnpackPool } from './unpack-pool.ts';

export { DEFAULT_UNPACK_LIMITS, type UnpackLimits, type UnpackResult } from './layer-extract.ts';

export interface UnpackOptions extends ExtractOptions {
  inThread?: boolean;
  pool?: UnpackPool;
  /** Whose pull it is: the pool's threads are shared fairly between tenants (../tenant-shares.ts). */
  requester?: Requester;
  /** The layer may take a writer thread for its files (unpack-pool.ts); the puller asks it for one layer (pull/writer-choice.ts). */
  writerThread?: boolean;
}

/**
 * `source` may be a function: it is then called once a worker is free (the image store passes the
 * blob download this way, so that queued layers do not hold idle HTTP responses).
 */
export async function unpackLayer(source: Readable | (() => Promise<Readable>), targetDir: string, opts: UnpackOptions): Promise<UnpackResult> {
  const open = typeof source === 'function' ? source : () => Promise.resolve(source);
  if (opts.inThread) return extractLayer(await open(), targetDir, opts);
  const pool = opts.pool ?? sharedUnpackPool();
  const limits: UnpackLimits = opts.limits ?? DEFAULT_UNPACK_LIMITS;
  const signal = opts.signal;
  let opened: Readable | null = null;
  const onAbort = () => opened?.destroy(abortReason(signal!));
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    return await pool.run({
      source: async () => {
        signal?.throwIfAborted();
        opened = await open();
        return opened;
      },
      fail: opts.fail,
      ...(opts.requester ? { requester: opts.requester } : {}),
      ...(signal ? { signal } : {}),
      ...(opts.writerThread ? { writerThread: true } : {}),
      ...(typeof opts.diffId === 'function' ? { lateDiffId: opts.diffId } : {}),
      start: { type: 'start', targetDir, compression: opts.compression, diffId: typeof opts.diffId === 'function' ? undefined : opts.diffId, limits, ...(opts.chown !== undefined ? { chown: opts.chown } : {}) },
    });
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}
