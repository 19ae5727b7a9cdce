/**
 * The libzstd decompression stream (and Node's gunzip, which layer-extract.ts relies on the same
 * way): exact output, frame errors with clear messages, and backpressure inside one input chunk
 * that expands 32768-fold.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { Readable, Writable, type Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Worker } from 'node:worker_threads';
import { createGunzip } from 'node:zlib';
import { gzipZeroBomb, zstdRawFrame, zstdRleBomb } from '../../../../test/fixtures/compression-bombs.ts';
import { createZstdDecompressor, zstdBinding } from './zstd-decompress.ts';

const MiB = 1024 * 1024;

function zstdCli(input: Buffer, ...args: string[]): Buffer {
  return execFileSync('zstd', ['-q', '-c', ...args], { input, maxBuffer: 1 << 30 });
}

/** Feeds `input` in pieces of `piece` bytes and collects the output. */
async function decode(input: Buffer, piece = 64 * 1024): Promise<Buffer> {
  const pieces: Buffer[] = [];
  for (let o = 0; o < input.length; o += piece) pieces.push(input.subarray(o, o + piece));
  const out: Buffer[] = [];
  await pipeline(Readable.from(pieces), createZstdDecompressor(), new Writable({ write: (c: Buffer, _e, cb) => (out.push(c), cb()) }));
  return Buffer.concat(out);
}

/** Writes all of `input` in one chunk, reads nothing, and reports what the stream buffered meanwhile. */
async function bufferedWithoutReader(stream: Duplex, input: Buffer): Promise<number> {
  stream.write(input);
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  await new Promise((r) => setTimeout(r, 100));
  return stream.readableLength;
}

/** Reads the whole stream, counting bytes (to check nothing was lost while it waited). */
async function drainCount(stream: Duplex): Promise<number> {
  let n = 0;
  for await (const chunk of stream) n += (chunk as Buffer).length;
  return n;
}

test('decodes what the zstd CLI made, in any input piece size, concatenated frames and skippable frames too', async () => {
  const data = Buffer.concat([randomBytes(300_000), Buffer.from('text '.repeat(200_000)), randomBytes(70_000)]);
  const frame = zstdCli(data, '-3');
  for (const piece of [7, 4096, 1 << 20]) assert.ok((await decode(frame, piece)).equals(data), `piece ${piece}`);
  const small = Buffer.from('byte by byte '.repeat(3000));
  assert.ok((await decode(zstdCli(small, '-3'), 1)).equals(small));
  const skippable = Buffer.concat([Buffer.from([0x50, 0x2a, 0x4d, 0x18]), Buffer.from([4, 0, 0, 0]), Buffer.from('skip')]);
  const two = Buffer.concat([frame, skippable, zstdCli(Buffer.from('and more'), '-19')]);
  assert.ok((await decode(two, 1000)).equals(Buffer.concat([data, Buffer.from('and more')])));
});

test('one chunk expanding 32768-fold is produced as the reader reads, not all at once', async () => {
  const bomb = zstdRleBomb(512 * MiB);
  assert.ok(bomb.length < 20_000);
  const stream = createZstdDecompressor();
  const buffered = await bufferedWithoutReader(stream, bomb);
  assert.ok(buffered <= 256 * 1024, `the decoder buffered ${buffered} bytes with nobody reading`);
  stream.end();
  assert.equal(await drainCount(stream), 512 * MiB);
});

test("Node's gunzip also stops inside one chunk when nobody reads (layer-extract.ts relies on it)", async () => {
  const bomb = await gzipZeroBomb(64 * MiB);
  const stream = createGunzip({ chunkSize: 256 * 1024 });
  const buffered = await bufferedWithoutReader(stream, bomb);
  assert.ok(buffered <= 512 * 1024, `gunzip buffered ${buffered} bytes with nobody reading`);
  stream.end();
  assert.equal(await drainCount(stream), 64 * MiB);
});

test('bad frames fail with clear messages; a window over 2^27 bytes is refused, 2^27 itself is not', async () => {
  const content = Buffer.from('window test '.repeat(1000));
  const cases: Array<[Buffer, RegExp, string]> = [
    [zstdRawFrame(content, 31), /^zstd window larger than 128 MiB$/, 'ERR_ZSTD_WINDOW_TOO_LARGE'],
    [zstdRawFrame(content, 28), /^zstd window larger than 128 MiB$/, 'ERR_ZSTD_WINDOW_TOO_LARGE'],
    [Buffer.from('this is not zstd at all'), /not zstd data/, 'Z_DATA_ERROR'],
    [zstdCli(content, '-3').subarray(0, 20), /truncated zstd data/, 'Z_DATA_ERROR'],
    [Buffer.alloc(0), /empty zstd data/, 'Z_DATA_ERROR'],
  ];
  for (const [input, message, code] of cases) {
    await assert.rejects(decode(input), (e: Error & { code?: string }) => {
      assert.match(e.message, message);
      assert.equal(e.code, code);
      return true;
    });
  }
  assert.ok((await decode(zstdRawFrame(content, 27))).equals(content));
});

test('the addon loads and decodes in worker threads (context-aware), beside the main thread', async () => {
  zstdBinding();
  const url = new URL('../../../../native/build/Release/sbx_zstd.node', import.meta.url).pathname;
  const frame = zstdCli(Buffer.from('from a worker'), '-3');
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const { ZstdDecoder } = require(workerData.url);
    const out = Buffer.alloc(1024);
    const [, produced, hint] = new ZstdDecoder(27).decompress(workerData.frame, 0, out);
    parentPort.postMessage({ text: out.subarray(0, produced).toString(), hint });`;
  const workers = [0, 1].map(() => new Worker(code, { eval: true, workerData: { url, frame } }));
  const replies = await Promise.all(workers.map(async (w) => (await once(w, 'message'))[0] as { text: string; hint: number }));
  assert.deepEqual(replies, [{ text: 'from a worker', hint: 0 }, { text: 'from a worker', hint: 0 }]);
  await Promise.all(workers.map((w) => w.terminate()));
});
