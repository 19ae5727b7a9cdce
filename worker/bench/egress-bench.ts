/**
 * `npm run bench:egress`: what a network "egress" job's proxy (worker/src/egress) costs, side by side
 * with tinyproxy (Debian's, installed if missing) and with no proxy at all, all on loopback, with
 * curl as the client:
 *
 * - throughput: a download of `--mb` MB through a CONNECT tunnel (how HTTPS goes) and as a
 *   plain-HTTP request, median seconds of `--runs`, and the proxy process's CPU seconds per GB;
 * - latency: `--requests` small requests in one curl, each on a new connection (a new tunnel for
 *   CONNECT), median and p90 of curl's time_total.
 *
 * The origin and each proxy run in processes of their own; the sbx proxy is the production code,
 * listening on a loopback port instead of inside a job's namespace. Prints one JSON line with --json.
 *   npx tsx worker/bench/egress-bench.ts [--mb 256] [--runs 5] [--requests 200] [--json]
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { ensureTools } from '../../loadtest/lib/bench-peers.ts';
import { freePort } from '../../test/harness/ports.ts';
import { benchArgs } from './bench-args.ts';
import { median, percentile } from '../../loadtest/lib/stats.ts';

const args = benchArgs(process.argv);
const mb = Number(args.value('--mb') ?? 256);
const requests = Number(args.value('--requests') ?? 200);
const root = resolve(dirname(new URL(import.meta.url).pathname), '../..');
const log = (line: string) => process.stderr.write(`${line}\n`);

const ORIGIN = `
const http = require('node:http');
const big = Buffer.alloc(Number(process.argv[1]) * 1e6, 0x61);
const s = http.createServer((req, res) => req.url === '/big' ? res.end(big) : res.end('ok'));
s.keepAliveTimeout = 60000;
s.listen(0, '127.0.0.1', () => process.stdout.write(s.address().port + '\\n'));
`;

/** Starts `cmd` and resolves with the first line it prints (a port), or rejects with its output. */
function startPrinting(cmd: string, argv: string[]): Promise<{ child: ChildProcess; line: string }> {
  return new Promise((done, fail) => {
    const child = spawn(cmd, argv, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (c) => {
      out += c;
      if (out.includes('\n')) done({ child, line: out.split('\n')[0]!.trim() });
    });
    child.stderr!.on('data', (c) => (err += c));
    child.on('exit', (code) => fail(new Error(`${cmd} exited ${code}: ${err.slice(-500)}`)));
  });
}

/** tinyproxy in the foreground on `port`, every CONNECT port allowed, from loopback only. */
async function startTinyproxy(dir: string, port: number): Promise<ChildProcess> {
  const conf = join(dir, 'tinyproxy.conf');
  writeFileSync(conf, [`Port ${port}`, 'Listen 127.0.0.1', 'Timeout 600', 'Allow 127.0.0.1', 'MaxClients 1000', 'LogLevel Critical', 'User nobody', 'Group nogroup', ''].join('\n'));
  const child = spawn('tinyproxy', ['-d', '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  for (let i = 0; i < 100; i++) {
    if (curl(['-s', '-o', '/dev/null', '-x', `http://127.0.0.1:${port}`, 'http://127.0.0.1:1/']).status !== 7) return child; // 7: could not connect to the proxy
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('tinyproxy did not start');
}

function curl(argv: string[]): { status: number | null; stdout: string } {
  const r = spawnSync('curl', argv, { encoding: 'utf8', maxBuffer: 64 << 20 });
  return { status: r.status, stdout: r.stdout };
}

/** user + system seconds of a process so far. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

interface Route { name: string; proxy: string[]; pid: number | null }

function measure(route: Route, originPort: number): Record<string, unknown> {
  const big = `http://127.0.0.1:${originPort}/big`;
  const small = `http://127.0.0.1:${originPort}/small`;
  const download = (tunnel: boolean) => {
    const times: number[] = [];
    const cpu0 = route.pid ? cpuSeconds(route.pid) : 0;
    for (let i = 0; i < args.runs + 1; i++) {
      const r = curl(['-s', '-o', '/dev/null', '-w', '%{time_total} %{size_download}', ...route.proxy, ...(tunnel && route.proxy.length ? ['--proxytunnel'] : []), big]);
      const [t, size] = r.stdout.split(' ').map(Number);
      if (r.status !== 0 || size !== mb * 1e6) throw new Error(`${route.name}: download failed (curl ${r.status}, ${size} bytes)`);
      if (i > 0) times.push(t!); // the first warms up
    }
    const cpu = route.pid ? (cpuSeconds(route.pid) - cpu0) / ((args.runs + 1) * mb / 1000) : null;
    const s = median(times);
    return { median_s: +s.toFixed(4), MBps: Math.round(mb / s), proxy_cpu_s_per_GB: cpu === null ? null : +cpu.toFixed(3) };
  };
  const latency = (tunnel: boolean) => {
    // Connection: close on every request, so each opens a new connection (and, through CONNECT, a new tunnel).
    const urls = Array.from({ length: requests + 10 }, () => ['-o', '/dev/null', small]).flat();
    const r = curl(['-s', '-H', 'Connection: close', '-w', '%{time_total}\\n', ...route.proxy, ...(tunnel && route.proxy.length ? ['--proxytunnel'] : []), ...urls]);
    const times = r.stdout.trim().split('\n').map((t) => Number(t) * 1000).slice(10);
    if (r.status !== 0 || times.length !== requests) throw new Error(`${route.name}: small requests failed (curl ${r.status})`);
    return { p50_ms: +median(times).toFixed(3), p90_ms: +percentile(times, 90).toFixed(3) };
  };
  return { tunnel: download(true), plain: download(false), tunnel_latency: latency(true), plain_latency: latency(false) };
}

async function main(): Promise<void> {
  ensureTools({ tinyproxy: 'tinyproxy', curl: 'curl' }, log);
  const dir = mkdtempSync(join(tmpdir(), 'sbx-egress-bench-'));
  const children: ChildProcess[] = [];
  try {
    const origin = await startPrinting(process.execPath, ['-e', ORIGIN, String(mb)]);
    children.push(origin.child);
    const originPort = Number(origin.line);
    const sbx = await startPrinting(process.execPath, ['--import', 'tsx', 'worker/bench/egress-proxy-server.ts', `127.0.0.1:${originPort}`]);
    children.push(sbx.child);
    const tinyPort = await freePort();
    const tiny = await startTinyproxy(dir, tinyPort);
    children.push(tiny);
    const routes: Route[] = [
      { name: 'direct', proxy: [], pid: null },
      { name: 'sbx', proxy: ['-x', `http://127.0.0.1:${sbx.line}`], pid: sbx.child.pid! },
      { name: 'tinyproxy', proxy: ['-x', `http://127.0.0.1:${tinyPort}`], pid: tiny.pid! },
    ];
    const results: Record<string, Record<string, any>> = {};
    for (const route of routes) {
      log(`egress bench: ${route.name}`);
      results[route.name] = measure(route, originPort);
    }
    const ratio = (path: (r: Record<string, any>) => number) => +(path(results.sbx!) / path(results.tinyproxy!)).toFixed(3);
    const out = {
      mb, runs: args.runs, requests, client: 'curl', peer: spawnSync('tinyproxy', ['-v'], { encoding: 'utf8' }).stdout.trim(),
      ...results,
      ratio_tunnel_time_vs_tinyproxy: ratio((r) => r.tunnel.median_s),
      ratio_plain_time_vs_tinyproxy: ratio((r) => r.plain.median_s),
      ratio_tunnel_latency_vs_tinyproxy: ratio((r) => r.tunnel_latency.p50_ms),
      ratio_plain_latency_vs_tinyproxy: ratio((r) => r.plain_latency.p50_ms),
    };
    if (args.json) process.stdout.write(`${JSON.stringify(out)}\n`);
    else process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  } finally {
    for (const c of children) c.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
