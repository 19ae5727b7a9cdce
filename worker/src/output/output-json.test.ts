/**
 * output-json.ts against what it replaces: for any bytes a job can write, the stored JSON is byte
 * for byte `JSON.stringify({ data: new TextDecoder().decode(bytes) })` as UTF-8 (every 1- and 2-byte
 * input, crafted edge cases, random mixes of the bytes where UTF-8 and JSON have rules), and a
 * stream cut where completeLength says reads as the whole.
 */
import assert from 'node:assert/strict';
import { StringDecoder } from 'node:string_decoder';
import { test } from 'node:test';
import { completeLength, encodeOutputJson } from './output-json.ts';

/** What the worker stored before: node's StringDecoder (the WHATWG rules; a byte order mark kept), then JSON.stringify. */
const decode = (bytes: Uint8Array) => {
  const decoder = new StringDecoder('utf8');
  return decoder.write(Buffer.from(bytes)) + decoder.end();
};
const expected = (bytes: Uint8Array) => Buffer.from(JSON.stringify({ data: decode(bytes) }));
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

/** A deterministic generator (xorshift32), so a failure names an input that can be run again. */
function random(seed: number): () => number {
  let x = seed || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

/** Bytes where UTF-8's or JSON's rules change: controls, quote, backslash, DEL, continuation ranges' edges, every kind of lead, bytes never valid. */
const EDGES = [0x00, 0x08, 0x0a, 0x1b, 0x1f, 0x20, 0x22, 0x41, 0x5c, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf4, 0xf5, 0xff];

test('every input of 1 and 2 bytes encodes as JSON.stringify of TextDecoder', () => {
  for (let a = 0; a < 256; a++) {
    assert.deepEqual(encodeOutputJson(Uint8Array.of(a)), expected(Uint8Array.of(a)), hex(Uint8Array.of(a)));
    for (let b = 0; b < 256; b++) {
      const bytes = Uint8Array.of(a, b);
      const got = encodeOutputJson(bytes);
      if (!got.equals(expected(bytes))) assert.fail(`input ${hex(bytes)}: ${got.toString()} against ${expected(bytes).toString()}`);
    }
  }
});

test('crafted sequences: overlongs, surrogates, past U+10FFFF, cut characters, valid 2–4 byte characters and escapes', () => {
  const cases = [
    'e282ac', 'e282', 'e2', 'e228a1', 'f09f9880', 'f09f98', 'f09f', 'f09f9841', 'c0af', 'e080af', 'f08080af', 'eda080', 'edbfbf', 'ed9fbf',
    'f4908080', 'f48fbfbf', 'f5808080', 'e0a080', 'e09f80', 'f0908080', 'f08f8080', 'c3a9c3', '22 5c 0a 0d 09 08 0c 1b 7f', 'e280a8e280a9', 'efbbbf', 'ffff', '80bfbf80',
  ];
  for (const h of cases) {
    const bytes = Buffer.from(h.replace(/ /g, ''), 'hex');
    assert.equal(encodeOutputJson(bytes).toString('hex'), expected(bytes).toString('hex'), h);
  }
});

test('random mixes of edge bytes, ASCII and whole characters, 20,000 inputs up to 64 bytes', () => {
  const rand = random(0x5b);
  const whole = [[0xc3, 0xa9], [0xe2, 0x82, 0xac], [0xf0, 0x9f, 0x98, 0x80], [0xed, 0x9f, 0xbf], [0xf4, 0x8f, 0xbf, 0xbf]];
  for (let round = 0; round < 20_000; round++) {
    const bytes: number[] = [];
    const length = Math.floor(rand() * 64);
    while (bytes.length < length) {
      const r = rand();
      if (r < 0.5) bytes.push(EDGES[Math.floor(rand() * EDGES.length)]!);
      else if (r < 0.7) bytes.push(...whole[Math.floor(rand() * whole.length)]!);
      else if (r < 0.85) bytes.push(0x20 + Math.floor(rand() * 95));
      else bytes.push(Math.floor(rand() * 256));
    }
    const input = Uint8Array.from(bytes);
    const got = encodeOutputJson(input);
    if (!got.equals(expected(input))) assert.fail(`input ${hex(input)}: ${got.toString('hex')} against ${expected(input).toString('hex')}`);
  }
});

test('1 MiB of random bytes and 1 MiB of text lines encode as before', () => {
  const rand = random(7);
  const binary = Uint8Array.from({ length: 1 << 20 }, () => Math.floor(rand() * 256));
  assert.ok(encodeOutputJson(binary).equals(expected(binary)));
  const text = Buffer.from('héllo "wörld"\t\\ 😀 line\n'.repeat(40_000));
  assert.ok(encodeOutputJson(text).equals(expected(text)));
});

test('a stream cut at completeLength of any of its starts reads as the whole: no character split, none held back longer than 3 bytes', () => {
  const rand = random(11);
  for (let round = 0; round < 3_000; round++) {
    const input = Uint8Array.from({ length: 1 + Math.floor(rand() * 24) }, () => (rand() < 0.6 ? EDGES[Math.floor(rand() * EDGES.length)]! : Math.floor(rand() * 256)));
    const whole = decode(input);
    for (let cut = 0; cut <= input.length; cut++) {
      const keep = completeLength(input.subarray(0, cut));
      assert.ok(keep <= cut && keep >= cut - 3, `kept ${keep} of ${cut}`);
      const parts = [input.subarray(0, keep), input.subarray(keep)].map((p) => (JSON.parse(encodeOutputJson(p).toString()) as { data: string }).data);
      if (parts.join('') !== whole) assert.fail(`input ${hex(input)} cut at ${cut} (kept ${keep}): ${JSON.stringify(parts)} against ${JSON.stringify(whole)}`);
    }
  }
});

test('completeLength holds back only a character that may still be completed', () => {
  const cases: Array<[string, number]> = [['41e282', 1], ['41e2', 1], ['41f09f98', 1], ['41c3', 1], ['41c3a9', 3], ['41e228', 3], ['41f080', 3], ['41eda0', 3], ['41ed9f', 1], ['418080', 3], ['', 0], ['f4', 0], ['f5', 1]];
  for (const [h, n] of cases) assert.equal(completeLength(Buffer.from(h, 'hex')), n, h);
});
