/**
 * A zstd decompression stream. Node 20's zlib has no zstd (it arrives in 22.15), so this wraps the
 * pure-JS `fzstd` streaming decoder (no native build, nothing to download at install).
 */
import { Transform, type TransformCallback } from 'node:stream';
import { Decompress } from 'fzstd';

class ZstdDecompressor extends Transform {
  private readonly decoder: Decompress;

  constructor() {
    super();
    // fzstd may reuse its output window: copy each chunk before handing it on.
    this.decoder = new Decompress((chunk) => {
      if (chunk.length) this.push(Buffer.from(chunk));
    });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    try {
      this.decoder.push(chunk);
      callback();
    } catch (e) {
      callback(Object.assign(new Error(`invalid zstd data: ${(e as Error).message}`), { code: 'Z_DATA_ERROR' }));
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.decoder.push(new Uint8Array(0), true);
      callback();
    } catch (e) {
      callback(Object.assign(new Error(`invalid zstd data: ${(e as Error).message}`), { code: 'Z_DATA_ERROR' }));
    }
  }
}

export function createZstdDecompressor(): Transform {
  return new ZstdDecompressor();
}
