/**
 * Where a cold pull's time goes: each stage of the layer pipeline measured on its own, on the
 * bench image's layers one after the other in this thread (so each figure is one core's work), and
 * then the whole cold `acquire()` (pool, layers in parallel) for reference.
 *
 * Stages: HTTP download from the registry (bytes discarded) · the same through RegistryClient.getBlob
 * (+ size/sha256 verification + stall watch) · sha256 of the compressed bytes · decompression ·
 * sha256 of the tar (diffID) · tar parsing (tar-stream, bodies discarded) · tar parsing + file writes
 * (LayerWriter) · the whole in-thread extraction (decompress + diffID + parse + write).
 */
import { createHash } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { Agent, request } from 'undici';
import type { BuiltImage } from '../../test/fixtures/oci-builder.ts';
import { extractLayer } from '../src/images/layers/layer-extract.ts';
import { TarParser } from '../src/images/layers/tar-parser.ts';
import { createLayerDecoder } from '../src/images/layers/layer-decoder.ts';
import { RegistryClient } from '../src/images/registry/registry-client.ts';
import { midpointMedian as median } from '../../loadtest/lib/stats.ts';

export interface PhaseRow {
  stage: string;
  /** Median seconds for all layers, one after the other, in one thread. */
  seconds: number;
  /** Median CPU seconds (user + system) of the same. */
  cpu_s: number;
}

/** Feeds a buffer as a stream of `piece`-byte chunks (like a socket would). */
function chunked(bytes: Buffer, piece = 64 * 1024): Readable {
  let off = 0;
  return new Readable({
    read() {
      if (off >= bytes.length) return void this.push(null);
      this.push(bytes.subarray(off, off + piece));
      off += piece;
    },
  });
}

const sink = () => new Writable({ write: (_c, _e, cb) => cb() });

/** Decompresses `bytes` (fed in 64 KiB chunks) as layers are, output discarded. */
function decompress(bytes: Buffer, mediaType: string): void {
  const decoder = createLayerDecoder(mediaType.endsWith('zstd') ? 'zstd' : 'gzip');
  try {
    for (let o = 0; o < bytes.length; o += 64 * 1024) {
      decoder.feed(bytes.subarray(o, o + 64 * 1024));
      while (decoder.next() !== null);
    }
    decoder.end();
  } finally {
    decoder.close();
  }
}

/** Wall and CPU seconds (this process: every stage here runs in this thread or zlib's pool). */
async function timed(fn: () => Promise<unknown>): Promise<{ wall: number; cpu: number }> {
  const cpu = process.cpuUsage();
  const started = performance.now();
  await fn();
  const used = process.cpuUsage(cpu);
  return { wall: (performance.now() - started) / 1000, cpu: (used.user + used.system) / 1e6 };
}

/** tar-stream (the parser used before), bodies discarded. */
async function parseTarStream(tarBytes: Buffer): Promise<void> {
  const extract = tar.extract();
  extract.on('entry', (_h, stream, next) => {
    stream.on('end', next);
    stream.resume();
  });
  await pipeline(chunked(tarBytes), extract);
}

/** TarParser (used now), fed in 256 KiB pieces as gunzip gives them, bodies discarded. */
function parseTarParser(tarBytes: Buffer): void {
  const parser = new TarParser(() => null, (d) => new Error(d));
  for (let o = 0; o < tarBytes.length; o += 256 * 1024) parser.push(tarBytes.subarray(o, o + 256 * 1024));
  parser.end();
}

/**
 * Measures every stage `runs` times over all layers of `image` (already pushed as `repo` to the
 * registry at `registryUrl`/`registryHost`); `tars` are the layers' uncompressed tars, in order.
 */
export async function measurePhases(opts: {
  image: BuiltImage;
  tars: Buffer[];
  registryHost: string;
  repo: string;
  workDir: string;
  runs: number;
}): Promise<PhaseRow[]> {
  const layers = opts.image.layers;
  const agent = new Agent({ connections: 8 });
  const client = new RegistryClient({ registry: opts.registryHost, dispatcher: agent });
  const target = { image: `${opts.registryHost}/${opts.repo}`, repository: opts.repo };
  const stages: Array<[string, () => Promise<void>]> = [
    [
      'HTTP download (raw undici, discarded)',
      async () => {
        for (const l of layers) {
          const res = await request(`http://${opts.registryHost}/v2/${opts.repo}/blobs/${l.digest}`, { dispatcher: agent });
          for await (const _ of res.body) void _;
        }
      },
    ],
    [
      'download + size/sha256 verify (getBlob)',
      async () => {
        for (const l of layers) await pipeline(await client.getBlob(target, l), sink());
      },
    ],
    ['sha256 of compressed (in memory)', async () => void layers.map((l) => createHash('sha256').update(l.bytes).digest())],
    [
      'decompress (in memory, discarded; layer-decoder.ts, as layers are)',
      async () => {
        for (const l of layers) decompress(l.bytes, l.mediaType);
      },
    ],
    ['sha256 of tar = diffID (in memory)', async () => void opts.tars.map((t) => createHash('sha256').update(t).digest())],
    [
      'tar parse, tar-stream (before; bodies discarded)',
      async () => {
        for (const t of opts.tars) await parseTarStream(t);
      },
    ],
    ['tar parse, TarParser (now; bodies discarded)', async () => void opts.tars.forEach(parseTarParser)],
    [
      'tar parse + file writes (LayerWriter)',
      async () => {
        for (const t of opts.tars) {
          const dir = await mkdtemp(join(opts.workDir, 'phase-write-'));
          await extractLayer(chunked(t), dir, { compression: 'none', diffId: null, fail: (d) => new Error(d) });
        }
      },
    ],
    [
      'whole extraction in one thread (decompress+diffID+parse+write)',
      async () => {
        for (const l of layers) {
          const dir = await mkdtemp(join(opts.workDir, 'phase-full-'));
          const compression = l.mediaType.endsWith('zstd') ? 'zstd' : 'gzip';
          await extractLayer(chunked(l.bytes), dir, { compression, diffId: l.diffId, fail: (d) => new Error(d) });
        }
      },
    ],
  ];
  const rows: PhaseRow[] = [];
  try {
    for (const [stage, fn] of stages) {
      const samples: Array<{ wall: number; cpu: number }> = [];
      for (let i = 0; i < opts.runs; i++) samples.push(await timed(fn));
      rows.push({ stage, seconds: Number(median(samples.map((x) => x.wall)).toFixed(3)), cpu_s: Number(median(samples.map((x) => x.cpu)).toFixed(3)) });
    }
  } finally {
    await agent.close();
  }
  return rows;
}
