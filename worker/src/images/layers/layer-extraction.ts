/**
 * One layer's extraction as a synchronous state machine, in the calling thread: compressed chunks
 * in (`push`), then `step()` until it reports the chunk done, then the next; `end()` at the end of
 * the blob. Per piece: decompress (layer-decoder.ts, at most PIECE bytes) → count against the layer
 * size cap and hash (diffID) → the tar bytes to TarWriting (TarParser → LayerWriter) here, or, when
 * the layer has a second thread for its files (`tarRing`, unpack-pool.ts), into the ring that thread
 * reads. No stream and no event per piece; the caller decides when to yield (feedChunk() yields to
 * the event loop every few MiB of output, so a bomb's expansion cannot keep an unpack worker deaf to
 * an abort for long).
 */
import { createHash, type Hash } from 'node:crypto';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { ByteRing, type ByteRingBuffers } from './byte-ring.ts';
import { createLayerDecoder, type LayerDecoder } from './layer-decoder.ts';
import type { LayerWriteStats } from './layer-writer.ts';
import { TarWriting } from './tar-writing.ts';
import type { LayerCompression } from '../registry/media-types.ts';
import type { UnpackLimits } from './layer-extract.ts';

export interface ExtractionOptions {
  compression: LayerCompression;
  /** sha256 the decompressed tar must have; null skips the check; undefined: given to end() (the config comes later). */
  diffId: string | null | undefined;
  limits: UnpackLimits;
  /** Builds the error that rejects the layer. */
  fail: (detail: string) => Error;
  chown?: boolean;
  /** The ring another thread writes the files from; without it they are written here. */
  tarRing?: ByteRingBuffers;
  /**
   * Asked before each decompressed piece and each tar entry: an error (an abort of the pull) stops
   * the layer there, not only between chunks (a chunk of small files can take seconds to write).
   */
  stopped?: () => Error | null;
}

/** Where the tar bytes go: the files written here, or another thread's ring (whose thread reports the stats). */
interface TarSink {
  push(bytes: Buffer): void;
  end(): LayerWriteStats | null;
  abort(): void;
}

class RingSink implements TarSink {
  private readonly ring: ByteRing;
  constructor(buffers: ByteRingBuffers) {
    this.ring = new ByteRing(buffers);
  }
  push(bytes: Buffer): void {
    this.ring.write(bytes);
  }
  end(): null {
    this.ring.end();
    return null;
  }
  abort(): void {
    this.ring.abort();
  }
}

/** What end() reports: the tar's size, and the files' stats when they were written in this thread. */
export interface ExtractionEnd {
  tarBytes: number;
  stats: LayerWriteStats | null;
  /** The sha256 of the tar (what a config's diff_ids name), when it was computed (not for an uncompressed layer or `diffId: null`). */
  diffId: string | null;
}

/** Pieces handled per step() before the caller may yield (32 × 256 KiB = 8 MiB of output). */
const PIECES_PER_STEP = 32;

function wrapDecompressError(e: unknown, fail: (detail: string) => Error): unknown {
  const code = (e as { code?: string }).code;
  if (code === 'ERR_ZSTD_WINDOW_TOO_LARGE') return fail(`it declares a ${(e as Error).message} (the limit)`);
  if (typeof code === 'string' && code.startsWith('Z_')) return fail(`a layer is not valid compressed data (${(e as Error).message})`);
  return e;
}

export class LayerExtraction {
  private readonly tar: TarSink;
  private readonly decoder: LayerDecoder;
  private readonly hash: Hash | null;
  private tarBytes = 0;
  private closed = false;

  constructor(targetDir: string, private readonly opts: ExtractionOptions) {
    const { limits, fail } = opts;
    this.tar = opts.tarRing
      ? new RingSink(opts.tarRing)
      : new TarWriting(targetDir, { maxEntries: limits.maxEntries, fail, ...(opts.chown !== undefined ? { chown: opts.chown } : {}), ...(opts.stopped ? { stopped: opts.stopped } : {}) });
    // An uncompressed layer's diffID is its blob digest, already verified as it streamed.
    this.hash = opts.compression === 'none' || opts.diffId === null ? null : createHash('sha256');
    this.decoder = createLayerDecoder(opts.compression, { outputVerified: this.hash !== null });
  }

  /** The next compressed chunk (the previous one must be done). */
  push(chunk: Uint8Array): void {
    this.guard(() => this.decoder.feed(chunk));
  }

  /** Handles up to `pieces` decompressed pieces of the current chunk; true once the chunk is done. */
  step(pieces = PIECES_PER_STEP): boolean {
    return this.guard(() => {
      for (let i = 0; i < pieces; i++) {
        const piece = this.decoder.next();
        if (piece === null) return true;
        this.take(piece);
      }
      return false;
    });
  }

  /**
   * The blob is over: checks it was complete and its diffID (the one given now when the options
   * left it undefined; null skips the check), then finishes the directory (or ends the ring).
   */
  end(lateDiffId: string | null = null): ExtractionEnd {
    return this.guard(() => {
      this.decoder.end();
      const expected = this.opts.diffId === undefined ? lateDiffId : this.opts.diffId;
      const actual = this.hash === null ? null : 'sha256:' + this.hash.digest('hex');
      if (actual !== null && expected !== null && actual !== expected) throw this.opts.fail(`a layer's uncompressed content has digest ${actual}, its config says ${expected}`);
      const stats = this.tar.end();
      this.release();
      return { tarBytes: this.tarBytes, stats, diffId: actual };
    });
  }

  /** Stops: closes what is open (the caller removes the directory). Safe to call more than once. */
  abort(): void {
    if (this.closed) return;
    this.tar.abort();
    this.release();
  }

  private take(piece: Buffer): void {
    const reason = this.opts.stopped?.();
    if (reason) throw reason;
    this.tarBytes += piece.length;
    const max = this.opts.limits.maxLayerBytes;
    if (this.tarBytes > max) throw this.opts.fail(`it decompresses to more than ${max} bytes (the layer size limit)`);
    this.hash?.update(piece);
    this.tar.push(piece);
  }

  /** Runs `fn`; on any failure aborts (once) and rethrows, decoder errors as layer rejections. */
  private guard<T>(fn: () => T): T {
    if (this.closed) throw new Error('layer extraction already ended');
    try {
      return fn();
    } catch (e) {
      this.abort();
      throw wrapDecompressError(e, this.opts.fail);
    }
  }

  private release(): void {
    this.closed = true;
    this.decoder.close();
  }
}

/** Pushes one chunk through `extraction`, yielding to the event loop between steps. */
export async function feedChunk(extraction: LayerExtraction, chunk: Uint8Array, stopped?: () => Error | null): Promise<void> {
  const check = () => {
    const reason = stopped?.();
    if (reason) {
      extraction.abort();
      throw reason;
    }
  };
  check();
  extraction.push(chunk);
  while (!extraction.step()) {
    await yieldToLoop();
    check();
  }
}
