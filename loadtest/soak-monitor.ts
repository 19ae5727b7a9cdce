/**
 * The soak's sampler and judge (loadtest/run.ts soak; also on its own, below). Every `intervalMs`
 * (10 s) it records the RSS of the API and worker processes (/proc/<pid>/status VmRSS), Redis's
 * `used_memory`, its key count and the keys by kind (SCAN, ids replaced by `*`), and the longest TTL
 * left on a finished job's state key (≈ the stack's SBX_JOB_TTL_SECONDS: retention). judgeSoak() then says:
 *   - every process stayed the same process (a restart would hide a leak and lose jobs);
 *   - API and worker RSS flat: the median of the last `windowS` (2 min) at most `tolerance` (10 %)
 *     above the median of the first `windowS` after `warmupS` (2 min: JIT, heaps grown to their
 *     working size, Redis at retention). A drop is no leak and passes;
 *   - Redis memory bounded by retention: retention (the TTL seen) ≤ warm-up, so jobs expire within
 *     the run, and `used_memory`, the key count and the elements of every shared key (not a job's own:
 *     indexes, queues, streams) holding ≥ 1000 are flat the same way (retention reached, nothing piling
 *     up beside it).
 *
 *   node --import tsx loadtest/soak-monitor.ts --pid api=123 --pid worker=456 --redis redis://… --seconds 600 [--json]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { procStatFields } from '../core/src/proc-stat.ts';
import { midpointMedian as median } from './lib/stats.ts';

export interface Sample {
  /** Seconds since the monitor started. */
  t: number;
  /** RSS in bytes by process name; null once the process is gone. */
  rss: Record<string, number | null>;
  /** Process start time (clock ticks since boot, /proc/<pid>/stat field 22): a changed pid owner shows. */
  started: Record<string, number | null>;
  redis: { usedMemory: number; keys: number; byKind: Record<string, number>; jobTtlMaxS: number | null; sizes?: Record<string, number> } | null;
  /** The machine's 1-minute load average (others' work on a shared machine shows here). */
  load1?: number;
}

export interface SoakVerdict {
  ok: boolean;
  /** One line per judgement, each starting with "ok" or "FAIL". */
  lines: string[];
  figures: Record<string, { early: number; late: number; ratio: number }>;
  retentionS: number | null;
}

function procStatus(pid: number): { rss: number; started: number } | null {
  try {
    const rssKb = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    const started = Number(procStatFields(readFileSync(`/proc/${pid}/stat`, 'utf8'))(22));
    return rssKb ? { rss: Number(rssKb[1]) * 1024, started } : null;
  } catch {
    return null;
  }
}

/** A key with its ids replaced: `sbx:{job:j_01…}:state` → `sbx:{job:*}:state`. */
export function keyKind(key: string): string {
  return key
    .replace(/\{job:[^}]+\}/, '{job:*}')
    .replace(/[0-9a-f]{64}/g, '*')
    .replace(/^([^:]+:\{workers\}:(?:info|jobs|holds|holders)):.+$/, '$1:*')
    .replace(/^(\{[^}]+\}:jobs\.host\.)[^:]+/, '$1*')
    .replace(/^(\{[^}]+\}:\w+:)(?:\d+|j_[0-9A-Za-z]+)(:\w+)?$/, '$1*$2');
}

const FINAL = new Set(['succeeded', 'failed', 'timeout', 'oom', 'cancelled', 'error']);

export class SoakMonitor {
  readonly samples: Sample[] = [];
  private readonly redis: Redis;
  private timer: NodeJS.Timeout | null = null;
  private readonly t0 = performance.now();
  private pending: Promise<void> = Promise.resolve();

  constructor(
    private readonly pids: Record<string, number>,
    redisUrl: string,
    private readonly intervalMs = 10_000,
  ) {
    this.redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
    this.redis.on('error', () => {});
  }

  start(): void {
    const tick = () => (this.pending = this.pending.then(() => this.sample()));
    tick();
    this.timer = setInterval(tick, this.intervalMs);
  }

  async stop(): Promise<Sample[]> {
    if (this.timer) clearInterval(this.timer);
    await this.pending;
    await this.sample();
    this.redis.disconnect();
    return this.samples;
  }

  private async sample(): Promise<void> {
    const t = Math.round((performance.now() - this.t0) / 100) / 10;
    const rss: Sample['rss'] = {};
    const started: Sample['started'] = {};
    for (const [name, pid] of Object.entries(this.pids)) {
      const s = procStatus(pid);
      rss[name] = s?.rss ?? null;
      started[name] = s?.started ?? null;
    }
    this.samples.push({ t, rss, started, redis: await this.redisSample().catch(() => null), load1: loadavg()[0] });
  }

  private async redisSample(): Promise<NonNullable<Sample['redis']>> {
    const info = await this.redis.info('memory');
    const usedMemory = Number(/^used_memory:(\d+)/m.exec(info)?.[1] ?? NaN);
    const byKind: Record<string, number> = {};
    const shared: string[] = [];
    let keys = 0;
    let jobTtlMaxS: number | null = null;
    let cursor = '0';
    do {
      const [next, batch] = await this.redis.scan(cursor, 'COUNT', 1000);
      cursor = next;
      for (const key of batch) {
        keys++;
        const kind = keyKind(key);
        byKind[kind] = (byKind[kind] ?? 0) + 1;
        if (!kind.includes('{job:*}')) shared.push(key);
      }
      // The TTL of a few finished jobs' states per batch: the longest is (about) the configured
      // retention (a queued or running job's record has a longer TTL until it ends).
      const states = batch.filter((k) => k.endsWith(':state')).slice(0, 8);
      for (const k of states) {
        const [status, ttl] = await Promise.all([this.redis.hget(k, 'status'), this.redis.ttl(k)]);
        if (status && FINAL.has(status) && ttl > 0) jobTtlMaxS = Math.max(jobTtlMaxS ?? 0, ttl);
      }
    } while (cursor !== '0');
    return { usedMemory, keys, byKind, jobTtlMaxS, sizes: await this.sizes(shared) };
  }

  /** Elements in each key that is not a job's own (indexes, queues, event streams): what could pile up in one key. */
  private async sizes(keys: string[]): Promise<Record<string, number>> {
    const SIZE: Record<string, string> = { zset: 'zcard', set: 'scard', hash: 'hlen', list: 'llen', stream: 'xlen' };
    const out: Record<string, number> = {};
    for (const key of keys) {
      const cmd = SIZE[await this.redis.type(key)];
      if (cmd) out[key] = Number(await this.redis.call(cmd, key));
    }
    return out;
  }
}

export function judgeSoak(samples: Sample[], opts: { warmupS?: number; windowS?: number; tolerance?: number; minElements?: number } = {}): SoakVerdict {
  const warmupS = opts.warmupS ?? 120;
  const windowS = opts.windowS ?? 120;
  const tolerance = opts.tolerance ?? 0.1;
  const lines: string[] = [];
  const figures: SoakVerdict['figures'] = {};
  let ok = true;
  const say = (pass: boolean, text: string) => {
    ok &&= pass;
    lines.push(`${pass ? 'ok  ' : 'FAIL'} ${text}`);
  };
  const end = samples.at(-1)?.t ?? 0;
  if (end < warmupS + 2 * windowS) {
    say(false, `the run lasted ${end} s: too short for a ${warmupS} s warm-up and two ${windowS} s windows`);
    return { ok, lines, figures, retentionS: null };
  }
  const early = samples.filter((s) => s.t >= warmupS && s.t <= warmupS + windowS);
  const late = samples.filter((s) => s.t >= end - windowS);
  const flat = (what: string, pick: (s: Sample) => number | null | undefined, unit: (v: number) => string) => {
    const e = early.map(pick).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
    const l = late.map(pick).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
    if (!e.length || !l.length) return say(false, `${what}: no samples in a window (early ${e.length}, late ${l.length})`);
    const f = { early: median(e), late: median(l), ratio: median(l) / median(e) };
    figures[what] = f;
    say(f.ratio <= 1 + tolerance, `${what}: median ${unit(f.early)} at ${warmupS}-${warmupS + windowS} s, ${unit(f.late)} in the last ${windowS} s (${((f.ratio - 1) * 100).toFixed(1)} %, bound +${tolerance * 100} %)`);
  };
  const mib = (v: number) => `${(v / 1048576).toFixed(1)} MiB`;

  for (const name of Object.keys(samples[0]?.rss ?? {})) {
    const starts = new Set(samples.map((s) => s.started[name]));
    const gone = samples.findIndex((s) => s.rss[name] === null);
    say(gone < 0 && starts.size === 1, `${name}: the same process throughout${gone >= 0 ? ` (gone at ${samples[gone]!.t} s)` : starts.size > 1 ? ' (restarted)' : ''}`);
    flat(`${name} RSS`, (s) => s.rss[name], mib);
  }

  const redisMissing = samples.filter((s) => !s.redis).length;
  say(redisMissing === 0, `redis: answered every sample (${redisMissing} missed)`);
  const ttls = samples.map((s) => s.redis?.jobTtlMaxS).filter((v): v is number => typeof v === 'number');
  const retentionS = ttls.length ? Math.max(...ttls) : null;
  say(retentionS !== null && retentionS <= warmupS, `redis: retention ${retentionS ?? '?'} s (longest TTL on a finished job's state) within the ${warmupS} s warm-up, so jobs expire during the run${retentionS !== null && retentionS > warmupS ? ': start the stack with a short SBX_JOB_TTL_SECONDS (60)' : ''}`);
  flat('redis used_memory', (s) => s.redis?.usedMemory, mib);
  flat('redis keys', (s) => s.redis?.keys, (v) => String(Math.round(v)));
  // One key can grow while the key count stays flat (an index nobody trims): each shared key holding
  // at least `minElements` at the end is judged the same way.
  const big = Object.entries(samples.at(-1)?.redis?.sizes ?? {}).filter(([, n]) => n >= (opts.minElements ?? 1000));
  for (const [key] of big) flat(`redis ${key} elements`, (s) => s.redis?.sizes?.[key], (v) => String(Math.round(v)));
  return { ok, lines, figures, retentionS };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      pid: { type: 'string', multiple: true, default: [] },
      redis: { type: 'string', default: `redis://127.0.0.1:${process.env.SBX_DEV_REDIS_PORT ?? '6399'}` },
      seconds: { type: 'string', default: '600' },
      out: { type: 'string', default: 'loadtest/results/soak-monitor.json' },
      json: { type: 'boolean', default: false },
    },
  });
  const pids = Object.fromEntries(values.pid!.map((p) => p.split('=')).map(([n, p]) => [n!, Number(p)]));
  const monitor = new SoakMonitor(pids, values.redis!);
  monitor.start();
  await new Promise((r) => setTimeout(r, Number(values.seconds) * 1000));
  const samples = await monitor.stop();
  const verdict = judgeSoak(samples);
  writeFileSync(values.out!, JSON.stringify({ verdict, samples }, null, 1));
  process.stdout.write(values.json ? `${JSON.stringify(verdict)}\n` : `${verdict.lines.join('\n')}\nsoak monitor: ${verdict.ok ? 'passed' : 'FAILED'}\n`);
  process.exitCode = verdict.ok ? 0 : 1;
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
