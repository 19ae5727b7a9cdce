/**
 * Streams one layer blob into a directory: download → decompress → (diffID hash + size cap) → tar
 * parse → LayerWriter, all in one pass with back-pressure. The caller gives a fresh directory and
 * renames it into the cache only when this resolves (a failed or truncated layer is never used).
 */
import { createHash, type Hash } from 'node:crypto';
import { PassThrough, Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { SbxError } from '../../../core/src/errors.ts';
import { LayerWriter, type LayerWriteStats, type TarHeader } from './layer-writer.ts';
import type { LayerCompression } from './media-types.ts';
import { createZstdDecompressor } from './zstd-decompress.ts';

export interface UnpackLimits {
  /** Decompressed tar bytes allowed for one layer (decompression bombs, P31). */
  maxLayerBytes: number;
  /** Tar entries allowed for one layer. */
  maxEntries: number;
}

export const DEFAULT_UNPACK_LIMITS: UnpackLimits = { maxLayerBytes: 16 * 1024 ** 3, maxEntries: 1_000_000 };

export interface UnpackOptions {
  compression: LayerCompression;
  /** sha256 the decompressed tar must have (the config's rootfs.diff_ids entry); null skips the check. */
  diffId: string | null;
  limits?: UnpackLimits;
  /** Builds the error that rejects the layer. */
  fail: (detail: string) => Error;
  chown?: boolean;
  signal?: AbortSignal;
}

export interface UnpackResult extends LayerWriteStats {
  /** Decompressed tar size. */
  tarBytes: number;
}

/** Counts (and optionally hashes) the decompressed tar; fails past the byte cap or on a diffID mismatch. */
class TarMeter extends Transform {
  bytes = 0;
  private readonly hash: Hash | null;

  constructor(
    private readonly maxBytes: number,
    private readonly diffId: string | null,
    private readonly fail: (detail: string) => Error,
  ) {
    super();
    this.hash = diffId === null ? null : createHash('sha256');
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes) {
      callback(this.fail(`a layer decompresses to more than the ${this.maxBytes}-byte limit`));
      return;
    }
    this.hash?.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (this.hash !== null) {
      const actual = 'sha256:' + this.hash.digest('hex');
      if (actual !== this.diffId) {
        callback(this.fail(`a layer's uncompressed content has digest ${actual}, its config says ${String(this.diffId)}`));
        return;
      }
    }
    callback();
  }
}

function createDecompressor(compression: LayerCompression): Transform {
  switch (compression) {
    case 'gzip':
      return createGunzip({ chunkSize: 256 * 1024 });
    case 'zstd':
      return createZstdDecompressor();
    case 'none':
      return new PassThrough();
  }
}

/** The error worth reporting when several parts of the pipeline fail: typed ones, then causes, then aborts. */
function pickError(errors: unknown[]): unknown {
  const isAbort = (e: unknown) => (e as { name?: string }).name === 'AbortError' || (e as { code?: string }).code === 'ERR_STREAM_PREMATURE_CLOSE';
  return errors.find((e) => e instanceof SbxError) ?? errors.find((e) => !isAbort(e)) ?? errors[0];
}

function wrapDecompressError(e: unknown, fail: (detail: string) => Error): unknown {
  const code = (e as { code?: string }).code;
  if (typeof code === 'string' && code.startsWith('Z_')) return fail(`a layer is not valid compressed data (${(e as Error).message})`);
  return e;
}

export async function unpackLayer(source: Readable, targetDir: string, opts: UnpackOptions): Promise<UnpackResult> {
  const limits = opts.limits ?? DEFAULT_UNPACK_LIMITS;
  const writer = new LayerWriter(targetDir, { fail: opts.fail, ...(opts.chown !== undefined ? { chown: opts.chown } : {}) });
  const meter = new TarMeter(limits.maxLayerBytes, opts.compression === 'none' ? null : opts.diffId, opts.fail);
  const extract = tar.extract();
  const abort = new AbortController();
  const onOuterAbort = () => abort.abort(opts.signal?.reason);
  opts.signal?.addEventListener('abort', onOuterAbort, { once: true });

  const piping = pipeline(source, createDecompressor(opts.compression), meter, extract, { signal: abort.signal }).catch((e: unknown) => {
    throw wrapDecompressError(e, opts.fail);
  });
  const writing = (async () => {
    for await (const entry of extract) {
      if (writer.stats.entries >= limits.maxEntries) throw opts.fail(`a layer has more than ${limits.maxEntries} entries`);
      await writer.add(entry.header as TarHeader, entry as AsyncIterable<Buffer>);
      entry.resume();
    }
    return writer.finish();
  })();

  try {
    const results = await Promise.allSettled([
      piping,
      writing.catch((e: unknown) => {
        abort.abort(e);
        throw e;
      }),
    ]);
    const errors = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as unknown);
    if (errors.length) {
      await writer.abort();
      throw pickError(errors);
    }
    const stats = (results[1] as PromiseFulfilledResult<LayerWriteStats>).value;
    return { ...stats, tarBytes: meter.bytes };
  } finally {
    opts.signal?.removeEventListener('abort', onOuterAbort);
  }
}
