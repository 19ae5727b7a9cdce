/**
 * Extracts one layer stream into a directory in the current thread: decompress → (diffID hash +
 * size cap) → tar parse (tar-parser.ts) → LayerWriter, in one pass (layer-extraction.ts). It runs
 * inside an unpack worker (layer-unpack-worker.ts, which drives LayerExtraction itself) or, with
 * `inThread`, here; layer-unpack.ts is the public entry point. The caller gives a fresh directory
 * and renames it into the cache only when this resolves.
 */
import type { Readable } from 'node:stream';
import type { LayerWriteStats } from './layer-writer.ts';
import type { LayerCompression } from '../registry/media-types.ts';
import { feedChunk, LayerExtraction } from './layer-extraction.ts';

export interface UnpackLimits {
  /** Decompressed tar bytes allowed for one layer (decompression bombs, P31). */
  maxLayerBytes: number;
  /** Tar entries allowed for one layer. */
  maxEntries: number;
}

export const DEFAULT_UNPACK_LIMITS: UnpackLimits = { maxLayerBytes: 16 * 1024 ** 3, maxEntries: 1_000_000 };

export interface ExtractOptions {
  compression: LayerCompression;
  /**
   * sha256 the decompressed tar must have (the config's rootfs.diff_ids entry); null skips the check;
   * a function: the config is still on its way, and the diffID is awaited once the blob is read.
   */
  diffId: string | null | (() => Promise<string | null>);
  limits?: UnpackLimits;
  /** Builds the error that rejects the layer. */
  fail: (detail: string) => Error;
  chown?: boolean;
  signal?: AbortSignal;
}

export interface UnpackResult extends LayerWriteStats {
  /** Decompressed tar size. */
  tarBytes: number;
  /** The tar's sha256 when it was computed (ExtractionEnd.diffId); an uncompressed layer's is its blob digest. */
  diffId: string | null;
}

/** Why an aborted unpack stopped: the signal's reason when it is an error. */
export function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('unpack aborted');
}

export async function extractLayer(source: Readable, targetDir: string, opts: ExtractOptions): Promise<UnpackResult> {
  const signal = opts.signal;
  const stopped = () => (signal?.aborted ? abortReason(signal) : null);
  const extraction = new LayerExtraction(targetDir, {
    compression: opts.compression,
    diffId: typeof opts.diffId === 'function' ? undefined : opts.diffId,
    limits: opts.limits ?? DEFAULT_UNPACK_LIMITS,
    fail: opts.fail,
    ...(opts.chown !== undefined ? { chown: opts.chown } : {}),
    ...(signal ? { stopped } : {}),
  });
  // An abort while waiting for the next chunk ends the wait (the loop then throws the source's error).
  const onAbort = () => source.destroy(abortReason(signal!));
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const chunk of source) await feedChunk(extraction, chunk as Uint8Array, stopped); // checks `stopped` first
    const reason = stopped();
    if (reason) throw reason;
    const { tarBytes, stats, diffId } = extraction.end(typeof opts.diffId === 'function' ? await opts.diffId() : null);
    if (stats === null) throw new Error('the files were not written in this thread'); // only with a tarRing, which this never gives
    return { ...stats, tarBytes, diffId };
  } catch (e) {
    extraction.abort();
    source.destroy();
    throw e;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}
