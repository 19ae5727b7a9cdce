/**
 * The second half of a layer's extraction: its tar bytes in (`push`), its files out (TarParser →
 * LayerWriter, with the layer's entry limit). LayerExtraction runs it in the thread that
 * decompresses; a layer given a thread of its own for its files (unpack-pool.ts) runs it there,
 * fed from a ByteRing by writeFilesFromRing().
 */
import { LayerWriter, type LayerWriteStats } from './layer-writer.ts';
import { TarParser } from './tar-parser.ts';
import type { ByteRing } from './byte-ring.ts';

export interface TarWritingOptions {
  maxEntries: number;
  /** Builds the error that rejects the layer. */
  fail: (detail: string) => Error;
  chown?: boolean;
  /** Asked before each entry (LayerWriterOptions.stopped): an error stops the layer there. */
  stopped?: () => Error | null;
}

export class TarWriting {
  private readonly writer: LayerWriter;
  private readonly parser: TarParser;

  constructor(targetDir: string, opts: TarWritingOptions) {
    const { maxEntries, fail } = opts;
    this.writer = new LayerWriter(targetDir, { fail, ...(opts.chown !== undefined ? { chown: opts.chown } : {}), ...(opts.stopped ? { stopped: opts.stopped } : {}) });
    this.parser = new TarParser((entry) => {
      if (this.writer.stats.entries >= maxEntries) throw fail(`a layer has more than ${maxEntries} entries`);
      return this.writer.add(entry);
    }, fail);
  }

  /** The next tar bytes; nothing keeps a view of them once this returns. */
  push(bytes: Buffer): void {
    this.parser.push(bytes);
  }

  /** The archive is over: checks it is complete, then finishes the directory. */
  end(): LayerWriteStats {
    this.parser.end();
    return this.writer.finish();
  }

  /** Closes what is open (the caller removes the directory). */
  abort(): void {
    this.writer.abort();
  }
}

/**
 * Writes the layer whose tar bytes another thread puts in `ring`, blocking this thread until the
 * ring ends (the stats) or is aborted (RingClosedError). On a failure of its own it stops the ring,
 * so the other thread's next write fails, and closes what it has open; the caller reports the error.
 */
export function writeFilesFromRing(ring: ByteRing, writing: TarWriting): LayerWriteStats {
  try {
    for (;;) {
      const bytes = ring.next();
      if (bytes === null) return writing.end();
      writing.push(bytes);
      ring.consumed(bytes.length);
    }
  } catch (e) {
    ring.stop();
    writing.abort();
    throw e;
  }
}
