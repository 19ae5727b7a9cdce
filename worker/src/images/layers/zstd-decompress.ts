/**
 * A zstd decompression stream over the reference libzstd (native/src/zstd_stream.cc, the sbx_zstd
 * addon; Node 20's zlib has no zstd). Bounded: the window is capped at 2^27 bytes (zstd's own
 * default limit: a frame asking for more fails "zstd window larger than 128 MiB"), and output is
 * produced OUTPUT_PIECE bytes per native call, only while the reader keeps up. A compressed chunk
 * may expand 32768-fold (an RLE block is 4 bytes for 128 KiB), so nothing loops over a whole chunk's
 * expansion: when push() reports a full buffer, decoding pauses with the input position kept and
 * resumes from _read(). At most about readableHighWaterMark + OUTPUT_PIECE bytes wait in this stream.
 */
import { createRequire } from 'node:module';
import { Duplex } from 'node:stream';

/** zstd's own default limit (ZSTD_WINDOWLOG_LIMIT_DEFAULT): windows of up to 128 MiB. */
export const ZSTD_WINDOW_LOG_MAX = 27;
/** Bytes produced per native call and the largest chunk pushed. */
const OUTPUT_PIECE = 128 * 1024;
/** A piece smaller than this is copied out rather than pushed as a view of the scratch buffer. */
const COPY_BELOW = OUTPUT_PIECE / 2;

interface NativeDecoder {
  /** One ZSTD_decompressStream call: [input offset after, bytes produced, hint (0 = frame complete)]. */
  decompress(input: Uint8Array, offset: number, output: Uint8Array): [number, number, number];
  close(): void;
}

interface ZstdBinding {
  ZstdDecoder: new (windowLogMax: number) => NativeDecoder;
  /** The gzip decoder of the same addon (native/src/gzip_stream.cc), used by layer-decoder.ts. */
  GzipDecoder: new (checkTrailer?: boolean) => { decompress(input: Uint8Array, offset: number, output: Uint8Array): [number, number]; finish(): void; close(): void };
  zstdVersion: string;
}

let binding: ZstdBinding | undefined;

/** The addon, loaded once per thread (it is context-aware: unpack worker threads load it too). */
export function zstdBinding(): ZstdBinding {
  binding ??= createRequire(import.meta.url)(new URL('../../../../native/build/Release/sbx_zstd.node', import.meta.url).pathname) as ZstdBinding;
  return binding;
}

function zstdError(message: string): Error {
  return Object.assign(new Error(message), { code: 'Z_DATA_ERROR' });
}

class ZstdDecompressor extends Duplex {
  private decoder: NativeDecoder | null;
  private scratch = Buffer.allocUnsafe(OUTPUT_PIECE);
  /** The compressed chunk being decoded, how far, and the write callback released when it is done. */
  private input: Uint8Array | null = null;
  private offset = 0;
  private release: ((error?: Error | null) => void) | null = null;
  /** The last hint: 0 when the last frame is complete (anything else at the end is a truncation). */
  private hint = -1;
  /** The reader asked for data and push() has not reported a full buffer since. */
  private wanted = false;
  private pumping = false;

  constructor() {
    super({ readableHighWaterMark: OUTPUT_PIECE, writableHighWaterMark: 64 * 1024 });
    this.decoder = new (zstdBinding().ZstdDecoder)(ZSTD_WINDOW_LOG_MAX);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (chunk.length === 0) {
      callback();
      return;
    }
    this.input = chunk;
    this.offset = 0;
    this.release = callback;
    this.pump();
  }

  override _final(callback: (error?: Error | null) => void): void {
    // Every write was released, so the decoder holds no output: only a complete last frame is left.
    if (this.hint === -1) callback(zstdError('empty zstd data'));
    else if (this.hint !== 0) callback(zstdError('truncated zstd data (the layer ends inside a frame)'));
    else {
      this.push(null);
      callback();
    }
  }

  override _read(): void {
    this.wanted = true;
    this.pump();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.decoder?.close();
    this.decoder = null;
    this.input = null;
    this.release = null;
    callback(error);
  }

  /**
   * Decodes while the reader wants data. Re-entrant calls (push() → reader → _write/_read) return
   * at once: the running loop sees their state.
   */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.input !== null && this.wanted && this.decoder !== null) this.step(this.input, this.decoder);
    } catch (e) {
      this.destroy(e as Error);
    } finally {
      this.pumping = false;
    }
  }

  /** One native call: at most OUTPUT_PIECE bytes out. Releases the input once it is fully flushed. */
  private step(input: Uint8Array, decoder: NativeDecoder): void {
    const before = this.offset;
    const [offset, produced, hint] = decoder.decompress(input, before, this.scratch);
    this.offset = offset;
    // A call that neither read nor wrote (the output ended exactly at a frame's end) says nothing.
    if (offset !== before || produced > 0) this.hint = hint;
    if (produced > 0) {
      let piece: Buffer;
      if (produced >= COPY_BELOW) {
        piece = this.scratch.subarray(0, produced);
        this.scratch = Buffer.allocUnsafe(OUTPUT_PIECE);
      } else {
        piece = Buffer.from(this.scratch.subarray(0, produced));
      }
      this.wanted = this.push(piece);
    }
    // A full output buffer may leave more inside the decoder; leftover input holds another frame.
    if (produced === OUTPUT_PIECE || offset < input.length) {
      if (produced === 0 && offset === before) throw zstdError('zstd decoder made no progress');
      return;
    }
    const release = this.release;
    this.input = null;
    this.release = null;
    release?.();
  }
}

/** A Duplex: compressed bytes in, decompressed bytes out, with backpressure on both sides. */
export function createZstdDecompressor(): Duplex {
  return new ZstdDecompressor();
}
