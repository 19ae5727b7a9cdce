/**
 * The sbx_zstd addon's zstd decoder (libzstd), as layer-decoder.ts drives it: exact output however
 * the input is cut (concatenated and skippable frames too), frame errors with clear messages and
 * codes, and the addon loading in worker threads (unpack workers load it). Bounded output per call
 * for a bomb: layer-decoder.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { zstdRawFrame } from '../../../../test/fixtures/compression-bombs.ts';
import { decoderAddon } from './decoder-addon.ts';
import { createLayerDecoder } from './layer-decoder.ts';

function zstdCli(input: Buffer, ...args: string[]): Buffer {
  return execFileSync('zstd', ['-q', '-c', ...args], { input, maxBuffer: 1 << 30 });
}

/** Feeds `input` in pieces of `piece` bytes to a zstd layer decoder and collects the output. */
function decode(input: Buffer, piece = 64 * 1024): Buffer {
  const decoder = createLayerDecoder('zstd');
  const out: Buffer[] = [];
  try {
    for (let o = 0; o < input.length; o += piece) {
      decoder.feed(input.subarray(o, o + piece));
      for (let p = decoder.next(); p !== null; p = decoder.next()) out.push(Buffer.from(p)); // a view of reused scratch
    }
    decoder.end();
  } finally {
    decoder.close();
  }
  return Buffer.concat(out);
}

test('decodes what the zstd CLI made, in any input piece size, concatenated frames and skippable frames too', () => {
  const data = Buffer.concat([randomBytes(300_000), Buffer.from('text '.repeat(200_000)), randomBytes(70_000)]);
  const frame = zstdCli(data, '-3');
  for (const piece of [7, 4096, 1 << 20]) assert.ok(decode(frame, piece).equals(data), `piece ${piece}`);
  const small = Buffer.from('byte by byte '.repeat(3000));
  assert.ok(decode(zstdCli(small, '-3'), 1).equals(small));
  const skippable = Buffer.concat([Buffer.from([0x50, 0x2a, 0x4d, 0x18]), Buffer.from([4, 0, 0, 0]), Buffer.from('skip')]);
  const two = Buffer.concat([frame, skippable, zstdCli(Buffer.from('and more'), '-19')]);
  assert.ok(decode(two, 1000).equals(Buffer.concat([data, Buffer.from('and more')])));
});

test('bad frames fail with clear messages; a window over 2^27 bytes is refused, 2^27 itself is not', () => {
  const content = Buffer.from('window test '.repeat(1000));
  const cases: Array<[Buffer, RegExp, string]> = [
    [zstdRawFrame(content, 31), /^zstd window larger than 128 MiB$/, 'ERR_ZSTD_WINDOW_TOO_LARGE'],
    [zstdRawFrame(content, 28), /^zstd window larger than 128 MiB$/, 'ERR_ZSTD_WINDOW_TOO_LARGE'],
    [Buffer.from('this is not zstd at all'), /not zstd data/, 'Z_DATA_ERROR'],
    [zstdCli(content, '-3').subarray(0, 20), /truncated zstd data/, 'Z_DATA_ERROR'],
    [Buffer.alloc(0), /empty zstd data/, 'Z_DATA_ERROR'],
  ];
  for (const [input, message, code] of cases) {
    assert.throws(() => decode(input), (e: Error & { code?: string }) => {
      assert.match(e.message, message);
      assert.equal(e.code, code);
      return true;
    });
  }
  assert.ok(decode(zstdRawFrame(content, 27)).equals(content));
});

test('the addon loads and decodes in worker threads (context-aware), beside the main thread', async () => {
  decoderAddon();
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
