/**
 * A pass-through stream that enforces a descriptor: it fails as soon as more bytes than `size` flow
 * through, and at the end when the byte count or the sha256 differ (P31: a registry streaming more
 * than the descriptor says is cut off; nothing is used before its digest is checked).
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

export interface ExpectedBlob {
  digest: string;
  size: number;
}

export class DigestVerifier extends Transform {
  private readonly hash: Hash = createHash('sha256');
  private received = 0;

  constructor(
    private readonly expected: ExpectedBlob,
    /** Builds the error to fail with; `detail` says what differed. */
    private readonly fail: (detail: string) => Error,
  ) {
    // Verified bytes may queue up to 1 MiB while the consumer is busy, so that it can take them in
    // one piece (the unpack pool posts what is buffered as one message); the writable side keeps the
    // default, so back-pressure on the download is unchanged.
    super({ readableHighWaterMark: 1 << 20 });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.received += chunk.length;
    if (this.received > this.expected.size) {
      callback(this.fail(`blob ${this.expected.digest} is larger than the ${this.expected.size} bytes its descriptor declares`));
      return;
    }
    this.hash.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (this.received !== this.expected.size) {
      callback(this.fail(`blob ${this.expected.digest} has ${this.received} bytes, its descriptor declares ${this.expected.size}`));
      return;
    }
    const actual = 'sha256:' + this.hash.digest('hex');
    if (actual !== this.expected.digest) {
      callback(this.fail(`blob content has digest ${actual}, expected ${this.expected.digest}`));
      return;
    }
    callback();
  }
}

/** sha256 of a buffer, as 'sha256:<hex>'. */
export function sha256Digest(bytes: Buffer): string {
  return 'sha256:' + createHash('sha256').update(bytes).digest('hex');
}
