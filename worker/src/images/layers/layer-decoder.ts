/**
 * Synchronous, pull-driven layer decompression in the calling thread: `feed(chunk)`, then `next()`
 * until it returns null, then the next chunk; `end()` once the blob is over. gzip uses the zlib Node
 * exports and zstd libzstd, both through the sbx_zstd addon (native/src/gzip_stream.cc,
 * zstd_stream.cc); no stream, no libuv thread-pool hop, no buffer allocated per piece.
 *
 * Bounded: each next() produces at most PIECE bytes, however far the input expands (a gzip or zstd
 * bomb), and the caller consumes each piece before asking for the next. A piece is a view of one
 * scratch buffer that the next call overwrites: consumers must copy what they keep (TarParser does).
 */
import { decoderAddon, ZSTD_WINDOW_LOG_MAX, type NativeGzipDecoder, type NativeZstdDecoder } from './decoder-addon.ts';
import type { LayerCompression } from '../registry/media-types.ts';

/** Bytes produced per native call (and the largest piece). */
export const PIECE = 256 * 1024;

export interface LayerDecoder {
  /** The next compressed chunk; the previous one must have been drained (next() returned null). */
  feed(chunk: Uint8Array): void;
  /** The next decompressed piece of what was fed, or null when it needs the next chunk. */
  next(): Buffer | null;
  /** The blob is over: throws if it ended inside a member or frame. */
  end(): void;
  /** Frees the native state (also done at garbage collection). */
  close(): void;
}

function dataError(message: string): Error {
  return Object.assign(new Error(message), { code: 'Z_DATA_ERROR' });
}

/** Shared loop: call the native decoder while input is left or the last call filled the output. */
abstract class NativeLayerDecoder implements LayerDecoder {
  protected readonly scratch = Buffer.allocUnsafe(PIECE);
  private input: Uint8Array | null = null;
  private offset = 0;
  private full = false;

  feed(chunk: Uint8Array): void {
    if (this.input !== null) throw new Error('LayerDecoder.feed() before the previous chunk was drained');
    this.input = chunk;
    this.offset = 0;
  }

  next(): Buffer | null {
    const input = this.input;
    if (input === null) return null;
    while (this.offset < input.length || this.full) {
      const before = this.offset;
      const produced = this.step(input, before);
      this.full = produced === PIECE;
      if (produced > 0) return this.scratch.subarray(0, produced);
      if (this.offset === before && this.offset < input.length) throw dataError('the decoder made no progress');
    }
    this.input = null;
    return null;
  }

  /** One native call from `offset`; sets this.offset, returns the bytes written to scratch. */
  protected abstract step(input: Uint8Array, offset: number): number;
  abstract end(): void;
  abstract close(): void;

  protected advance(offset: number): void {
    this.offset = offset;
  }
}

class GzipLayerDecoder extends NativeLayerDecoder {
  private readonly native: NativeGzipDecoder;

  constructor(checkTrailer: boolean) {
    super();
    this.native = new (decoderAddon().GzipDecoder)(checkTrailer);
  }

  protected step(input: Uint8Array, offset: number): number {
    const [after, produced] = this.native.decompress(input, offset, this.scratch);
    this.advance(after);
    return produced;
  }

  end(): void {
    this.native.finish();
  }

  close(): void {
    this.native.close();
  }
}

class ZstdLayerDecoder extends NativeLayerDecoder {
  private readonly native: NativeZstdDecoder = new (decoderAddon().ZstdDecoder)(ZSTD_WINDOW_LOG_MAX);
  /** The last hint: 0 when the last frame is complete (anything else at the end is a truncation). */
  private hint = -1;

  protected step(input: Uint8Array, offset: number): number {
    const [after, produced, hint] = this.native.decompress(input, offset, this.scratch);
    // A call that neither read nor wrote (the output ended exactly at a frame's end) says nothing.
    if (after !== offset || produced > 0) this.hint = hint;
    this.advance(after);
    return produced;
  }

  end(): void {
    if (this.hint === -1) throw dataError('empty zstd data');
    if (this.hint !== 0) throw dataError('truncated zstd data (the layer ends inside a frame)');
  }

  close(): void {
    this.native.close();
  }
}

/** An uncompressed layer: the chunk itself, in pieces of at most PIECE bytes. */
class PlainLayerDecoder implements LayerDecoder {
  private input: Buffer | null = null;
  private offset = 0;

  feed(chunk: Uint8Array): void {
    if (this.input !== null) throw new Error('LayerDecoder.feed() before the previous chunk was drained');
    this.input = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.offset = 0;
  }

  next(): Buffer | null {
    const input = this.input;
    if (input === null || this.offset >= input.length) {
      this.input = null;
      return null;
    }
    const piece = input.subarray(this.offset, Math.min(input.length, this.offset + PIECE));
    this.offset += piece.length;
    return piece;
  }

  end(): void {}
  close(): void {}
}

export interface LayerDecoderOptions {
  /**
   * The caller checks the output's sha256 (the diffID), so gzip's crc32 and length trailers, a
   * weaker check of the same bytes, are not computed (about 0.07 s of CPU for 250 MB). Default false.
   */
  outputVerified?: boolean;
}

export function createLayerDecoder(compression: LayerCompression, opts: LayerDecoderOptions = {}): LayerDecoder {
  switch (compression) {
    case 'gzip':
      return new GzipLayerDecoder(!opts.outputVerified);
    case 'zstd':
      return new ZstdLayerDecoder();
    case 'none':
      return new PlainLayerDecoder();
  }
}
