/**
 * layer-decoder.ts: gzip (the addon's GzipDecoder over the zlib Node exports) and zstd (libzstd),
 * pull-style into one reused scratch. The output must be what Node's gunzip / the zstd CLI make of
 * the same bytes, however the input is cut; every piece is at most PIECE bytes, also for a bomb
 * fed as one chunk; gzip reads what Node's gunzip reads (concatenated members, zero padding) and
 * refuses the rest (garbage after the data, a truncated member, no data).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { createLayerDecoder, PIECE } from './layer-decoder.ts';
import type { LayerCompression } from '../registry/media-types.ts';

/** Decodes `data` fed in `piece`-byte chunks; returns sha256 and length of the output, and the largest piece. */
function decode(compression: LayerCompression, data: Buffer, piece: number, outputVerified = false): { digest: string; bytes: number; largest: number } {
  const decoder = createLayerDecoder(compression, { outputVerified });
  const hash = createHash('sha256');
  let bytes = 0;
  let largest = 0;
  try {
    for (let o = 0; o < data.length; o += piece) {
      decoder.feed(data.subarray(o, o + piece));
      for (let out = decoder.next(); out !== null; out = decoder.next()) {
        hash.update(out);
        bytes += out.length;
        largest = Math.max(largest, out.length);
      }
    }
    decoder.end();
  } finally {
    decoder.close();
  }
  return { digest: hash.digest('hex'), bytes, largest };
}

function expected(plain: Buffer): { digest: string; bytes: number } {
  return { digest: createHash('sha256').update(plain).digest('hex'), bytes: plain.length };
}

/** Mixed content: incompressible, text, and long runs (matches that end exactly at piece boundaries). */
function sample(): Buffer {
  const text = Buffer.from('lorem ipsum dolor sit amet, consectetur adipiscing elit\n'.repeat(20_000));
  return Buffer.concat([randomBytes(300_000), text, Buffer.alloc(3 * PIECE + 17, 0x41), randomBytes(70_000), Buffer.alloc(2 * PIECE, 0)]);
}

const PIECES = [1, 7, 512, 4093, 65_536, 1 << 20];

test('gzip: the same bytes as Node gunzip, however the input is cut; no piece larger than PIECE', () => {
  const plain = sample();
  for (const level of [1, 9]) {
    const gz = gzipSync(plain, { level });
    for (const piece of [...PIECES, gz.length]) {
      const got = decode('gzip', gz, piece);
      assert.deepEqual({ digest: got.digest, bytes: got.bytes }, expected(plain), `level ${level}, pieces of ${piece}`);
      assert.ok(got.largest <= PIECE);
    }
  }
});

test('gzip: concatenated members and trailing zero padding are read as Node reads them', () => {
  const a = Buffer.from('first member\n'.repeat(1000));
  const b = randomBytes(100_000);
  const data = Buffer.concat([gzipSync(a), gzipSync(b), Buffer.alloc(1024)]);
  assert.deepEqual(gunzipSync(data), Buffer.concat([a, b]));
  for (const piece of [1, 13, 4096, data.length]) {
    const { digest, bytes } = decode('gzip', data, piece);
    assert.deepEqual({ digest, bytes }, expected(Buffer.concat([a, b])), `pieces of ${piece}`);
  }
});

test('gzip: garbage after the data, a truncated member and empty data are refused', () => {
  const gz = gzipSync(Buffer.from('hello world\n'.repeat(100)));
  const refuse = (data: Buffer, pattern: RegExp, label: string) => {
    for (const piece of [1, 5, data.length || 1]) {
      assert.throws(
        () => decode('gzip', data, piece),
        (e: Error & { code?: string }) => pattern.test(e.message) && typeof e.code === 'string' && e.code.startsWith('Z_'),
        `${label} (pieces of ${piece})`,
      );
    }
  };
  refuse(Buffer.concat([gz, Buffer.from('garbage')]), /incorrect header check|trailing garbage/, 'garbage after a member');
  refuse(Buffer.concat([gz, Buffer.alloc(10), Buffer.from([1])]), /trailing garbage/, 'garbage after the zero padding');
  refuse(gz.subarray(0, gz.length - 1), /unexpected end of file/, 'truncated in the trailer');
  refuse(gz.subarray(0, gz.length >> 1), /unexpected end of file/, 'truncated in the data');
  refuse(Buffer.alloc(0), /unexpected end of file/, 'no data');
  const corrupt = Buffer.from(gz);
  corrupt[corrupt.length - 6]! ^= 0xff; // the crc32 of the trailer
  refuse(corrupt, /incorrect data check/, 'bad crc32');
});

test('a bomb fed as one chunk comes out PIECE bytes per next(), only as the caller asks', () => {
  // 256 MiB of zeros: 255 KiB of gzip, a few KiB of zstd.
  const zeros = Buffer.alloc(256 * 1024 * 1024);
  const bombs: Array<[LayerCompression, Buffer]> = [
    ['gzip', gzipSync(zeros, { level: 9 })],
    ['zstd', execFileSync('zstd', ['-19', '-c', '-q'], { input: zeros, maxBuffer: 1 << 26 })],
  ];
  for (const [compression, bomb] of bombs) {
    const decoder = createLayerDecoder(compression);
    decoder.feed(bomb);
    for (let i = 0; i < 8; i++) {
      const out = decoder.next();
      assert.ok(out !== null && out.length > 0 && out.length <= PIECE, `${compression}: piece ${i}`);
    }
    decoder.close(); // stopping early is fine: nothing more was produced
    const whole = decode(compression, bomb, bomb.length);
    assert.equal(whole.bytes, zeros.length, compression);
    assert.ok(whole.largest <= PIECE);
  }
});

test('zstd: the same bytes as the zstd CLI made them from, however the input is cut; truncation refused', () => {
  const plain = sample();
  const zst = execFileSync('zstd', ['-3', '-c', '-q'], { input: plain, maxBuffer: 1 << 26 });
  for (const piece of [...PIECES, zst.length]) assert.deepEqual({ ...decode('zstd', zst, piece), largest: 0 }, { ...expected(plain), largest: 0 }, `pieces of ${piece}`);
  assert.throws(() => decode('zstd', zst.subarray(0, zst.length - 3), 4096), /truncated zstd data/);
});

/** One zstd frame declaring `declared` bytes (single segment), holding `data` as a raw block, then an empty last raw block. */
function zstdFrame(declared: number, data: Buffer): Buffer {
  const rawBlock = (size: number, last: boolean) => Buffer.from([((size << 3) | (last ? 1 : 0)) & 0xff, (size >> 5) & 0xff, (size >> 13) & 0xff]);
  return Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x20, declared]), rawBlock(data.length, false), data, rawBlock(0, true)]);
}

test('zstd: a frame holding fewer or more bytes than its header declares is refused however it is cut', () => {
  // libzstd 1.5.4 checks the declared size at the last block, except for an empty last block read
  // apart from the frame's start: before, this frame was refused whole but accepted (5 bytes) in
  // pieces of up to 13 bytes, so whether a layer unpacked depended on how the network cut it.
  for (const declared of [64, 3]) {
    const frame = zstdFrame(declared, Buffer.from('hello'));
    // Whole, libzstd says it; in pieces, the addon (which counts what each frame produced).
    const message = new RegExp(`the frame holds 5 bytes, its header declares ${declared}|Data corruption detected`);
    for (let piece = 1; piece <= frame.length; piece++) {
      assert.throws(() => decode('zstd', frame, piece), (e: Error & { code?: string }) => message.test(e.message) && e.code === 'Z_DATA_ERROR', `declares ${declared}, pieces of ${piece}`);
    }
  }
  // Control: frames that hold what they declare, one after the other, as the CLI writes them with a known size.
  const plain = Buffer.from('content size known\n'.repeat(30_000));
  const framed = execFileSync('zstd', ['-3', '-c', '-q', `--stream-size=${plain.length}`], { input: plain });
  const both = Buffer.concat([zstdFrame(5, Buffer.from('hello')), framed, zstdFrame(0, Buffer.alloc(0)), framed]);
  for (const piece of [1, 2, 7, 4093, both.length]) {
    assert.deepEqual({ ...decode('zstd', both, piece), largest: 0 }, { ...expected(Buffer.concat([Buffer.from('hello'), plain, plain])), largest: 0 }, `pieces of ${piece}`);
  }
});

test('none: the chunks themselves, in pieces of at most PIECE bytes', () => {
  const plain = randomBytes(3 * PIECE + 5);
  for (const piece of [1000, plain.length]) assert.deepEqual(decode('none', plain, piece), { ...expected(plain), largest: Math.min(piece, PIECE) });
});

test('gzip trailers (crc32, length) are checked unless the caller verifies the output itself (the diffID)', () => {
  const plain = Buffer.from('checked by sha256 instead\n'.repeat(5000));
  const gz = gzipSync(plain);
  const badCrc = Buffer.from(gz);
  badCrc[badCrc.length - 6]! ^= 0xff;
  const badLength = Buffer.from(gz);
  badLength[badLength.length - 2]! ^= 0xff;
  assert.throws(() => decode('gzip', badCrc, 4096), /incorrect data check/);
  assert.throws(() => decode('gzip', badLength, 4096), /incorrect length check/);
  for (const data of [badCrc, badLength]) {
    const { digest, bytes } = decode('gzip', data, 4096, true);
    assert.deepEqual({ digest, bytes }, expected(plain));
  }
  // Everything else is still checked: the deflate data itself, truncation.
  assert.throws(() => decode('gzip', gz.subarray(0, gz.length - 4), 4096, true), /unexpected end of file/);
  const badData = Buffer.from(gz);
  badData[20]! ^= 0xff;
  assert.throws(() => decode('gzip', badData, 4096, true), (e: Error & { code?: string }) => e.code === 'Z_DATA_ERROR');
});
