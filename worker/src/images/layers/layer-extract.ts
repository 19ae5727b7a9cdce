/**
 * Extracts one layer stream into a directory in the current thread: decompress → (diffID hash +
 * size cap) → tar parse (tar-parser.ts) → LayerWriter, in one pass with back-pressure. It runs inside an unpack
 * worker (layer-unpack-worker.ts); layer-unpack.ts is the public entry point. The caller gives a
 * fresh directory and renames it into the cache only when this resolves.
 */
import { createHash, type Hash } from 'node:crypto';
import { PassThrough, Transform, Writable, type Duplex, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { LayerWriter, type LayerWriteStats } from './layer-writer.ts';
import type { LayerCompression } from '../registry/media-types.ts';
import { TarParser } from './tar-parser.ts';
import { createZstdDecompressor } from './zstd-decompress.ts';

export interface UnpackLimits {
  /** Decompressed tar bytes allowed for one layer (decompression bombs, P31). */
  maxLayerBytes: number;
  /** Tar entries allowed for one layer. */
  maxEntries: number;
}

export const DEFAULT_UNPACK_LIMITS: UnpackLimits = { maxLayerBytes: 16 * 1024 ** 3, maxEntries: 1_000_000 };

export interface ExtractOptions {
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
      callback(this.fail(`it decompresses to more than ${this.maxBytes} bytes (the layer size limit)`));
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

/**
 * gzip: Node's zlib Transform stops inflating when push() reports a full buffer and resumes on
 * _read(), even within one input chunk (checked by zstd-decompress.test.ts), so at most about
 * chunkSize bytes wait in it however far a chunk expands. zstd: see zstd-decompress.ts.
 */
function createDecompressor(compression: LayerCompression): Duplex {
  switch (compression) {
    case 'gzip':
      return createGunzip({ chunkSize: 256 * 1024 });
    case 'zstd':
      return createZstdDecompressor();
    case 'none':
      return new PassThrough();
  }
}

function wrapDecompressError(e: unknown, fail: (detail: string) => Error): unknown {
  const code = (e as { code?: string }).code;
  if (code === 'ERR_ZSTD_WINDOW_TOO_LARGE') return fail(`it declares a ${(e as Error).message} (the limit)`);
  if (typeof code === 'string' && code.startsWith('Z_')) return fail(`a layer is not valid compressed data (${(e as Error).message})`);
  return e;
}

/** Parses the tar as it arrives and writes its entries, synchronously, in this thread. */
class TarSink extends Writable {
  constructor(private readonly parser: TarParser) {
    super({ highWaterMark: 1 << 20 });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (error?: Error | null) => void): void {
    try {
      this.parser.push(chunk);
    } catch (e) {
      callback(e as Error);
      return;
    }
    callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    try {
      this.parser.end();
    } catch (e) {
      callback(e as Error);
      return;
    }
    callback();
  }
}

export async function extractLayer(source: Readable, targetDir: string, opts: ExtractOptions): Promise<UnpackResult> {
  const limits = opts.limits ?? DEFAULT_UNPACK_LIMITS;
  const writer = new LayerWriter(targetDir, { fail: opts.fail, ...(opts.chown !== undefined ? { chown: opts.chown } : {}) });
  const meter = new TarMeter(limits.maxLayerBytes, opts.compression === 'none' ? null : opts.diffId, opts.fail);
  const parser = new TarParser((entry) => {
    if (writer.stats.entries >= limits.maxEntries) throw opts.fail(`a layer has more than ${limits.maxEntries} entries`);
    return writer.add(entry);
  }, opts.fail);
  try {
    const decompressor = createDecompressor(opts.compression);
    const sink = new TarSink(parser);
    if (opts.signal) await pipeline(source, decompressor, meter, sink, { signal: opts.signal });
    else await pipeline(source, decompressor, meter, sink);
  } catch (e) {
    writer.abort();
    throw wrapDecompressError(e, opts.fail);
  }
  const stats = writer.finish();
  return { ...stats, tarBytes: meter.bytes };
}
