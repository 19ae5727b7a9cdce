/**
 * The sbx_zstd addon's decoders (zstd_stream.cc, gzip_stream.cc) over hostile layer bytes, run by
 * native/tools/sanitize.sh against the ASan + UBSan build (a report aborts the process): gzip
 * members and zstd frames of seeded data, mutated (bytes flipped or zeroed, cut, spliced,
 * repeated; 16 seeds of each), fed in random input pieces and output sizes, as a registry could serve them. A
 * decoder may refuse any of them (a JS exception); nothing else may happen. Then the calls a buggy
 * caller could make: offsets out of range, other typed arrays, a closed decoder, odd window limits.
 * Deterministic: fixed seed.   node --import tsx decoders-fuzz.ts [cases]
 */
import { execFileSync } from 'node:child_process';
import zlib from 'node:zlib';
import { decoderAddon, ZSTD_WINDOW_LOG_MAX } from '../../../worker/src/images/layers/decoder-addon.ts';

let state = 0x9e3779b97f4a7c15n;
/** xorshift64*, as the C++ harnesses use: a number in [0, n). */
function below(n: number): number {
  state ^= state >> 12n;
  state ^= (state << 25n) & 0xffffffffffffffffn;
  state ^= state >> 27n;
  const r = (state * 2685821657736338717n) & 0xffffffffffffffffn;
  return n > 0 ? Number(r % BigInt(n)) : 0;
}

/** Data that compresses a little (runs, text) or not at all (noise). */
function seedData(): Buffer {
  const b = Buffer.alloc(below(4) === 0 ? below(300_000) : below(5000));
  const noisy = below(3) === 0;
  for (let i = 0; i < b.length; i++) b[i] = noisy ? below(256) : 97 + ((i >> below(8)) % 7);
  return b;
}

function zstdOf(data: Buffer): Buffer {
  const args = ['-q', '-c', `-${1 + below(19)}`];
  if (below(3) === 0) args.push('--no-check');
  return execFileSync('zstd', args, { input: data, maxBuffer: 64 << 20 });
}

function gzipOf(data: Buffer): Buffer {
  const member = zlib.gzipSync(data, { level: below(10) });
  return below(4) === 0 ? Buffer.concat([member, zlib.gzipSync(seedData()), Buffer.alloc(below(3) * 512)]) : member;
}

function mutate(b: Buffer): Buffer {
  let out = Buffer.from(b);
  for (let i = 0, n = 1 + below(4); i < n && out.length > 0; i++) {
    const at = below(out.length);
    switch (below(6)) {
      case 0: out[at] = below(256); break;
      case 1: out[at] = 0; break;
      case 2: out[at] = out[at]! ^ (1 << below(8)); break;
      case 3: out = out.subarray(0, at); break;
      case 4: out = Buffer.concat([out.subarray(0, at), out.subarray(below(out.length), below(out.length)), out.subarray(at)]); break;
      case 5: out = Buffer.concat([out, out.subarray(at)]); break;
    }
  }
  return out;
}

interface Decoder { decompress(input: Uint8Array, offset: number, output: Uint8Array): number[]; finish?(): void; close(): void }

/** Feed `bytes` in random pieces until refused, used up, or 8 MiB out (a bomb is not the point here). */
function drain(d: Decoder, bytes: Buffer): 'refused' | 'decoded' {
  let produced = 0;
  try {
    for (let pos = 0; pos < bytes.length || below(2) === 0;) {
      const piece = bytes.subarray(pos, pos + 1 + below(below(2) ? 64 : 70_000));
      const output = new Uint8Array(below(3) === 0 ? 1 + below(16) : 1 + below(256 * 1024));
      let offset = 0;
      for (let round = 0; round < 10_000; round++) {
        const [after, n] = d.decompress(piece, offset, output);
        produced += n!;
        if (after! < offset || after! > piece.length || n! > output.length) throw new Error(`decompress returned [${after}, ${n}] for offset ${offset} of ${piece.length}, output ${output.length}`);
        offset = after!;
        if (offset === piece.length && n! < output.length) break;
        if (produced > 8 << 20) return 'decoded';
      }
      pos += piece.length;
      if (piece.length === 0) break;
    }
    d.finish?.();
    return 'decoded';
  } catch (e) {
    if (!(e instanceof Error) || /decompress returned/.test(e.message)) throw e;
    return 'refused';
  } finally {
    d.close();
  }
}

/** Calls outside the contract: each must throw a JS error or be refused, never reach memory it should not. */
function misuse(): number {
  const addon = decoderAddon();
  const input = zlib.gzipSync(Buffer.from('hello'));
  const out = new Uint8Array(16);
  const calls: Array<() => unknown> = [
    () => new addon.GzipDecoder().decompress(input, -1, out),
    () => new addon.GzipDecoder().decompress(input, input.length + 1, out),
    () => new addon.GzipDecoder().decompress(input, Number.NaN, out),
    () => new addon.GzipDecoder().decompress(input, 2 ** 53, out),
    () => new addon.GzipDecoder().decompress(input, Infinity, out),
    () => new addon.GzipDecoder().decompress(new Uint16Array(4) as unknown as Uint8Array, 0, out),
    () => new addon.GzipDecoder().decompress(input, 0, new Float64Array(2) as unknown as Uint8Array),
    () => new addon.GzipDecoder().decompress(input, 0, new Uint8Array(0)),
    () => new addon.GzipDecoder().decompress(input.subarray(3, 9), 2, out),
    () => { const d = new addon.GzipDecoder(); d.close(); d.close(); return d.decompress(input, 0, out); },
    () => { const d = new addon.GzipDecoder(); d.close(); d.finish(); },
    () => new (addon.GzipDecoder as unknown as new (x: unknown) => Decoder)('yes'),
    ...[-1, 0, 9, 10, 27, 31, 32, 64, Number.NaN, 2 ** 40].map((w) => () => new addon.ZstdDecoder(w).decompress(zstdOf(Buffer.from('hello')), 0, out)),
    () => new addon.ZstdDecoder(ZSTD_WINDOW_LOG_MAX).decompress(input, 1 << 30, out),
    () => { const d = new addon.ZstdDecoder(ZSTD_WINDOW_LOG_MAX); d.close(); d.close(); return d.decompress(input, 0, out); },
    () => new addon.ZstdDecoder(ZSTD_WINDOW_LOG_MAX).decompress(new Int32Array(2) as unknown as Uint8Array, 0, out),
    () => (addon.ZstdDecoder as unknown as () => unknown)(),
  ];
  for (const call of calls) {
    try { call(); } catch (e) { if (!(e instanceof Error)) throw e; }
  }
  return calls.length;
}

const cases = Number(process.argv[2] ?? 1000);
const counts = { refused: 0, decoded: 0 };
const addon = decoderAddon();
const seeds = { zstd: Array.from({ length: 16 }, () => zstdOf(seedData())), gzip: Array.from({ length: 16 }, () => gzipOf(seedData())) };
for (let i = 0; i < cases; i++) {
  const zstd = i % 2 === 0;
  const clean = (zstd ? seeds.zstd : seeds.gzip)[below(16)]!;
  const bytes = i % 8 < 2 ? clean : mutate(clean);  // a quarter of them whole
  const decoder = zstd ? new addon.ZstdDecoder(ZSTD_WINDOW_LOG_MAX) : new addon.GzipDecoder(below(4) !== 0);
  counts[drain(decoder as Decoder, bytes)]++;
}
const misuses = misuse();
console.error(`decoders_fuzz: ${cases} streams (${counts.decoded} decoded, ${counts.refused} refused), ${misuses} calls outside the contract`);
