/**
 * zstd layer decompression throughput: the libzstd decoder sbx uses (layer-decoder.ts over the
 * sbx_zstd addon, decoder-addon.ts) against the pure-JS fzstd decoder it replaced, on the same data: ~200 MB of a real tar
 * (files from /usr) compressed with `zstd -3`, fed in 64 KiB pieces (as from the network), output
 * counted by the consumer. `zstd -d` (the CLI, same libzstd) is printed for reference.
 *
 *   npm run bench:zstd -- [--runs 5] [--mb 200] [--dir /var/tmp] [--json]
 *
 * fzstd is no longer a dependency: `npm install --no-save fzstd` first to include it.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { decoderAddon } from '../src/images/layers/decoder-addon.ts';
import { createLayerDecoder } from '../src/images/layers/layer-decoder.ts';
import { benchArgs } from './bench-args.ts';
import { ensureTools } from '../../loadtest/lib/bench-peers.ts';
import { median } from '../../loadtest/lib/stats.ts';
import { ownDir } from '../../loadtest/lib/bench-tools-dir.ts';

interface Args {
  runs: number;
  mb: number;
  dir: string;
  json: boolean;
}

function parseArgs(argv: string[]): Args {
  const args = benchArgs(argv);
  return { runs: args.runs, mb: Number(args.value('--mb') ?? 200), dir: args.dir, json: args.json };
}

/** The first `mb` MB of a tar of /usr/lib, /usr/share, /usr/bin, compressed with zstd -3 (made once). */
function benchData(args: Args): { path: string; tarBytes: number } {
  const dir = ownDir(join(args.dir, 'sbx-zstd-bench')); // made once and read again: this user's alone
  const path = join(dir, `usr-${args.mb}mb.tar.zst`);
  if (!existsSync(path)) {
    const bytes = args.mb * 1_000_000;
    // No pipefail: tar ends on SIGPIPE once head has its bytes.
    execFileSync('bash', ['-c', `tar -cf - -C / usr/lib usr/share usr/bin 2>/dev/null | head -c ${bytes} | zstd -q -f -3 -o '${path}.tmp' && mv '${path}.tmp' '${path}'`], {
      stdio: 'inherit',
    });
  }
  const tarBytes = Number(execFileSync('bash', ['-c', `zstd -dc '${path}' | wc -c`], { encoding: 'utf8' }).trim());
  return { path, tarBytes };
}

function pieces(data: Buffer, size = 64 * 1024): Buffer[] {
  const out: Buffer[] = [];
  for (let o = 0; o < data.length; o += size) out.push(data.subarray(o, o + size));
  return out;
}

type Decoder = (input: Buffer[]) => Promise<number>;

const libzstd: Decoder = async (input) => {
  let n = 0;
  const decoder = createLayerDecoder('zstd');
  try {
    for (const c of input) {
      decoder.feed(c);
      for (let p = decoder.next(); p !== null; p = decoder.next()) n += p.length;
    }
    decoder.end();
  } finally {
    decoder.close();
  }
  return n;
};

/** fzstd as the old zstd decoder used it (each chunk copied out of its window). */
async function loadFzstd(): Promise<Decoder | null> {
  let mod: { Decompress: new (cb: (chunk: Uint8Array, final: boolean) => void) => { push(c: Uint8Array, final?: boolean): void } };
  try {
    mod = (await import('fzstd' as string)) as typeof mod;
  } catch {
    return null;
  }
  return async (input) => {
    let n = 0;
    const decoder = new mod.Decompress((chunk) => (n += Buffer.from(chunk).length));
    for (const c of input) {
      decoder.push(c);
      await new Promise((r) => setImmediate(r));
    }
    decoder.push(new Uint8Array(0), true);
    return n;
  };
}

async function time(decoder: Decoder, input: Buffer[], expected: number): Promise<number> {
  const start = process.hrtime.bigint();
  const n = await decoder(input);
  const s = Number(process.hrtime.bigint() - start) / 1e9;
  if (n !== expected) throw new Error(`decoded ${n} bytes, expected ${expected}`);
  return s;
}


async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  ensureTools({ zstd: 'zstd', tar: 'tar' }); // `zstd -d` (the CLI) is the peer always measured
  const { path, tarBytes } = benchData(args);
  const compressed = readFileSync(path);
  const input = pieces(compressed);
  const fzstd = await loadFzstd();
  const times: Record<string, number[]> = { libzstd: [], fzstd: [], cli: [] };
  for (let r = 0; r < args.runs; r++) {
    // Alternate the order so neither always runs on a warmer machine.
    const order: Array<[string, Decoder]> = [['libzstd', libzstd], ...(fzstd ? [['fzstd', fzstd] as [string, Decoder]] : [])];
    if (r % 2 === 1) order.reverse();
    for (const [name, decoder] of order) times[name]!.push(await time(decoder, input, tarBytes));
    const start = process.hrtime.bigint();
    const cli = spawnSync('bash', ['-c', `zstd -dc '${path}' > /dev/null`]);
    if (cli.status !== 0) throw new Error('zstd -d failed');
    times.cli!.push(Number(process.hrtime.bigint() - start) / 1e9);
  }
  const mbps = (s: number) => tarBytes / 1e6 / s;
  const result: Record<string, unknown> = {
    data: { compressedBytes: statSync(path).size, tarBytes, zstdLibrary: decoderAddon().zstdVersion },
    runs: args.runs,
  };
  for (const [name, xs] of Object.entries(times)) {
    if (xs.length === 0) continue;
    result[name] = { median_s: +median(xs).toFixed(3), median_MBps: +mbps(median(xs)).toFixed(0), runs_s: xs.map((x) => +x.toFixed(3)) };
    console.log(`${name.padEnd(8)} median ${median(xs).toFixed(3)} s  ${mbps(median(xs)).toFixed(0)} MB/s  (runs: ${xs.map((x) => x.toFixed(2)).join(', ')})`);
  }
  // libzstd in-process (fed 64 KiB pieces, as from the network) against the zstd CLI on the file.
  result.ratio_vs_cli = +(median(times.libzstd!) / median(times.cli!)).toFixed(3);
  console.log(`libzstd median / zstd -d median = ${String(result.ratio_vs_cli)}`);
  if (times.fzstd!.length) {
    result.ratio = +(median(times.fzstd!) / median(times.libzstd!)).toFixed(2);
    console.log(`libzstd is ${String(result.ratio)}× the throughput of fzstd`);
  } else {
    console.log('fzstd not installed (npm install --no-save fzstd to compare)');
  }
  console.log(`${(compressed.length / 1e6).toFixed(1)} MB compressed → ${(tarBytes / 1e6).toFixed(1)} MB tar, libzstd ${decoderAddon().zstdVersion}`);
  if (args.json) console.log(JSON.stringify(result));
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:zstd: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
