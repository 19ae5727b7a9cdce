/**
 * `npm run soak:leaks -- [--jobs 3000] [--every 500] [--concurrency 6] [--workers 1] [--heap-diff] [--settle] [--json FILE]`:
 * does anything grow with the number of jobs run? A private stack (test harness: Redis, registry, API
 * and worker(s) from source, SBX_JOB_TTL_SECONDS=60, no submission rate limit) runs a mix of jobs —
 * `true` (?wait=true), output, stdin, timeouts, cancels (queued and running), failed commands,
 * commands not found, images not found, pull=always, OOM kills, input and output files, SSE followers
 * that disconnect after the first event, `?stream=true` submits dropped early, followers read to the
 * end, attach over the WebSocket (stdin, tty) — `--concurrency` at a time. Every `--every` jobs the
 * load stops, the stack drains (no job left unfinished), and each measure is taken:
 *   - API and worker: RSS, V8 heap used after a full GC and the active resources by kind (timers,
 *     sockets, …: process.getActiveResourcesInfo()), both through the inspector (SIGUSR1; the stack is
 *     started with NODE_OPTIONS=--inspect-port=0, so each process picks a free loopback port), open
 *     file descriptors by kind (/proc/PID/fd), threads (/proc/PID/task), child processes;
 *   - Redis: DBSIZE, used_memory, keys by kind (ids replaced: loadtest/soak-monitor.ts keyKind);
 *   - the worker's state dir (entries, by top-level directory), mounts (/proc/self/mountinfo lines),
 *     cgroups under the stack's SBX_CGROUP_PARENT in every hierarchy, /tmp entries new since the start;
 *   - Prometheus series on the API's and the worker's /metrics.
 * With `--heap-diff` the inspector also takes a heap snapshot of each process at the first checkpoint
 * and the last and prints the kinds of objects whose count grew most (RSS is then not judged: a
 * snapshot itself grows RSS by ~100 MiB). With `--settle` it then waits out the job TTL (plus 30 s)
 * and measures once more (a last column: Redis's per-job keys gone, RSS given back). The table goes
 * to stdout; the verdict compares the last checkpoint with the first (the first is taken after
 * `--every` jobs, so warm-up is behind it): a measure that rose by at least the number of jobs between
 * them / 100 (a count) or by more than 25 % and 8 MiB (RSS, heap) is named. Exit 1 when one is; the numbers are the point (loadtest/RESULTS.md, "Leak soak").
 */
import { readdirSync, readFileSync, readlinkSync, writeFileSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import WebSocket from 'ws';
import { SbxClient } from '../client/src/index.ts';
import { attachJob } from '../client/src/attach.ts';
import { startStack, startWorkerWithMetrics, type ManagedProcess } from '../test/harness/stack.ts';
import { waitUntil } from '../test/harness/redis.ts';
import { keyKind } from './soak-monitor.ts';

type Measures = Record<string, number>;

/** One process's inspector: a full GC, heap used, active resources by kind. */
class Inspector {
  private ws: WebSocket | null = null;
  private seq = 0;
  private pending = new Map<number, (r: { result?: unknown; error?: { message: string } }) => void>();
  private chunks: string[] = [];
  constructor(private readonly proc: ManagedProcess) {}

  private async connect(): Promise<WebSocket> {
    if (this.ws) return this.ws;
    process.kill(this.proc.child.pid!, 'SIGUSR1');
    let url = '';
    await waitUntil(async () => {
      url = /Debugger listening on (ws:\/\/\S+)/.exec(this.proc.log())?.[1] ?? '';
      return url !== '';
    }, 10_000, `${this.proc.name}'s inspector`);
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
    ws.on('message', (data: Buffer) => {
      const m = JSON.parse(data.toString()) as { id?: number; method?: string; params?: { chunk: string }; result?: unknown; error?: { message: string } };
      if (m.method === 'HeapProfiler.addHeapSnapshotChunk') this.chunks.push(m.params!.chunk);
      if (m.id !== undefined) this.pending.get(m.id)?.(m);
      if (m.id !== undefined) this.pending.delete(m.id);
    });
    this.ws = ws;
    return ws;
  }

  async call<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const ws = await this.connect();
    const id = ++this.seq;
    const answer = await new Promise<{ result?: unknown; error?: { message: string } }>((resolve) => {
      this.pending.set(id, resolve);
      ws.send(JSON.stringify({ id, method, params }));
    });
    if (answer.error) throw new Error(`${this.proc.name} ${method}: ${answer.error.message}`);
    return answer.result as T;
  }

  async measure(): Promise<Measures> {
    await this.call('HeapProfiler.collectGarbage');
    await this.call('HeapProfiler.collectGarbage');
    const heap = await this.call<{ usedSize: number }>('Runtime.getHeapUsage');
    const r = await this.call<{ result: { value: string } }>('Runtime.evaluate', {
      expression: 'JSON.stringify(process.getActiveResourcesInfo())',
      returnByValue: true,
    });
    const out: Measures = { heapMiB: heap.usedSize / 2 ** 20 };
    for (const kind of JSON.parse(r.result.value) as string[]) out[`res.${kind}`] = (out[`res.${kind}`] ?? 0) + 1;
    return out;
  }

  /** Objects on the heap after a GC, counted by `type:constructor-or-name`. */
  async heapCounts(): Promise<Map<string, number>> {
    this.chunks = [];
    await this.call('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
    const snap = JSON.parse(this.chunks.join('')) as { snapshot: { meta: { node_fields: string[]; node_types: [string[]] } }; nodes: number[]; strings: string[] };
    this.chunks = [];
    const fields = snap.snapshot.meta.node_fields;
    const types = snap.snapshot.meta.node_types[0];
    const [typeAt, nameAt] = [fields.indexOf('type'), fields.indexOf('name')];
    const counts = new Map<string, number>();
    for (let i = 0; i < snap.nodes.length; i += fields.length) {
      const type = types[snap.nodes[i + typeAt]!]!;
      const name = type === 'string' || type === 'concatenated string' || type === 'sliced string' ? '' : snap.strings[snap.nodes[i + nameAt]!]!.slice(0, 60);
      const key = `${type}:${name}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    return counts;
  }

  close(): void {
    this.ws?.close();
  }
}

function procMeasures(pid: number): Measures {
  const out: Measures = {};
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  out.rssMiB = Number(/^VmRSS:\s+(\d+)/m.exec(status)![1]) / 1024;
  out.threads = readdirSync(`/proc/${pid}/task`).length;
  const fds = readdirSync(`/proc/${pid}/fd`);
  out.fds = fds.length;
  for (const fd of fds) {
    let target: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue;
    }
    const kind = target.startsWith('socket:') ? 'socket' : target.startsWith('pipe:') ? 'pipe' : target.startsWith('anon_inode:') ? target.replace(/^anon_inode:\[?([^\]]+)\]?$/, '$1') : target.startsWith('/') ? 'file' : 'other';
    out[`fd.${kind}`] = (out[`fd.${kind}`] ?? 0) + 1;
  }
  let children = 0;
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    try {
      children += readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).length;
    } catch {
      // the thread ended
    }
  }
  out.children = children;
  return out;
}

function countEntries(dir: string, limit = 200_000): number {
  let n = 0;
  const stack = [dir];
  while (stack.length && n < limit) {
    const d = stack.pop()!;
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      continue;
    }
    for (const name of names) {
      n++;
      const p = join(d, name);
      try {
        const s = statSync(p, { throwIfNoEntry: false });
        if (s?.isDirectory() && !s.isSymbolicLink()) stack.push(p);
      } catch {
        // gone
      }
    }
  }
  return n;
}

function cgroupDirs(parent: string): number {
  let n = 0;
  for (const h of readdirSync('/sys/fs/cgroup')) {
    const dir = join('/sys/fs/cgroup', h, parent);
    if (!existsSync(dir)) continue;
    const stack = [dir];
    while (stack.length) {
      const d = stack.pop()!;
      n++;
      try {
        for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) stack.push(join(d, e.name));
      } catch {
        // removed meanwhile
      }
    }
  }
  return n;
}

async function series(url: string): Promise<number> {
  const text = await (await fetch(url)).text();
  return text.split('\n').filter((l) => l && !l.startsWith('#')).length;
}

async function redisMeasures(redis: Redis): Promise<Measures> {
  const out: Measures = { 'redis.keys': await redis.dbsize() };
  out['redis.usedMiB'] = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]) / 2 ** 20;
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'COUNT', 1000);
    cursor = next;
    for (const key of batch) {
      const kind = `redis[${keyKind(key).replace(/j_[0-9A-Za-z]+/g, '*')}]`;
      out[kind] = (out[kind] ?? 0) + 1;
    }
  } while (cursor !== '0');
  return out;
}

type Kind = (c: Ctx) => Promise<void>;
interface Ctx {
  api: SbxClient;
  baseUrl: string;
  image: string;
  missing: string;
}

const sh = (script: string) => ['sh', '-c', script];

async function finished(c: Ctx, id: string): Promise<string> {
  return (await c.api.wait(id, { timeoutMs: 60_000 })).status;
}

function expect(what: string, got: string, want: string | string[]): void {
  if (!(Array.isArray(want) ? want : [want]).includes(got)) throw new Error(`${what}: ${got}, expected ${String(want)}`);
}

/** Reads an event stream until its first event, then drops the connection. */
async function readFirstEventAndDrop(res: Response): Promise<void> {
  const reader = res.body!.getReader();
  let text = '';
  while (!/\n\n/.test(text)) {
    const { value, done } = await reader.read();
    if (done) break;
    text += Buffer.from(value).toString();
  }
  await reader.cancel();
}

export const KINDS: Record<string, Kind> = {
  async trueWait(c) {
    const j = await c.api.submit({ image: c.image, command: ['true'] }, { wait: true });
    expect('true', j.status, 'succeeded');
  },
  async output(c) {
    const j = await c.api.submit({ image: c.image, command: sh('i=0; while [ $i -lt 300 ]; do echo line $i; i=$((i+1)); done; echo oops >&2') }, { wait: true });
    expect('output', j.status, 'succeeded');
    if (!j.output?.stdout.includes('line 299')) throw new Error('output: lines missing');
  },
  async stdin(c) {
    const j = await c.api.submit({ image: c.image, command: ['wc', '-l'], stdin: 'x\n'.repeat(1000) }, { wait: true });
    expect('stdin', j.status, 'succeeded');
    if (j.output?.stdout.trim() !== '1000') throw new Error(`stdin: ${j.output?.stdout}`);
  },
  async timeout(c) {
    const j = await c.api.submit({ image: c.image, command: ['sleep', '30'], limits: { timeoutMs: 300 } }, { wait: true });
    expect('timeout', j.status, 'timeout');
  },
  async cancelRunning(c) {
    const j = await c.api.submit({ image: c.image, command: sh('echo up; sleep 30') });
    await waitUntil(async () => (await c.api.get(j.id)).status !== 'queued' && (await c.api.get(j.id)).status !== 'pulling', 30_000, 'running');
    await c.api.cancel(j.id).catch(() => {});
    expect('cancelRunning', await finished(c, j.id), 'cancelled');
  },
  async cancelQueued(c) {
    const j = await c.api.submit({ image: c.image, command: ['sleep', '30'] });
    await c.api.cancel(j.id).catch(() => {});
    expect('cancelQueued', await finished(c, j.id), 'cancelled');
  },
  async failed(c) {
    const j = await c.api.submit({ image: c.image, command: sh('echo bad >&2; exit 3') }, { wait: true });
    expect('failed', j.status, 'failed');
  },
  async notFound(c) {
    const j = await c.api.submit({ image: c.image, command: ['/no/such/command'] }, { wait: true });
    expect('notFound', j.status, ['error', 'failed']);
  },
  async imageMissing(c) {
    const j = await c.api.submit({ image: c.missing, command: ['true'] }, { wait: true });
    expect('imageMissing', j.status, 'error');
  },
  async pullAlways(c) {
    const j = await c.api.submit({ image: c.image, command: ['true'], pull: 'always' }, { wait: true });
    expect('pullAlways', j.status, 'succeeded');
  },
  async oom(c) {
    const j = await c.api.submit({ image: c.image, command: sh('head -c 200000000 /dev/zero | tail -c 150000000 >/dev/null'), limits: { memoryBytes: 16 * 2 ** 20 } }, { wait: true });
    expect('oom', j.status, ['oom', 'failed']);
  },
  async files(c) {
    const j = await c.api.submit({ image: c.image, workdir: '/tmp/w', command: sh('cp in.txt out.txt; echo more >> out.txt'), files: [{ path: 'in.txt', content: 'hello\n' }], outputFiles: ['out.txt'] }, { wait: true });
    expect('files', j.status, 'succeeded');
  },
  async sseDropped(c) {
    const j = await c.api.submit({ image: c.image, command: sh('echo a; sleep 1; echo b') });
    const res = await fetch(`${c.baseUrl}/v1/jobs/${j.id}/events`);
    await readFirstEventAndDrop(res);
    expect('sseDropped', await finished(c, j.id), 'succeeded');
  },
  async streamDropped(c) {
    const res = await fetch(`${c.baseUrl}/v1/jobs?stream=true`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image: c.image, command: sh('echo a; sleep 1; echo b') }) });
    const id = res.headers.get('location')!.split('/').pop()!;
    await readFirstEventAndDrop(res);
    expect('streamDropped', await finished(c, id), 'succeeded');
  },
  async sseFollowed(c) {
    const j = await c.api.submit({ image: c.image, command: sh('for i in 1 2 3 4 5; do echo $i; done') });
    let last = '';
    for await (const e of c.api.events(j.id)) last = e.type;
    expect('sseFollowed', last, 'exit');
  },
  async attach(c) {
    const j = await c.api.submit({ image: c.image, command: ['cat'], openStdin: true });
    let out = '';
    const a = await attachJob(j.id, { baseUrl: c.baseUrl, onOutput: (_s, d) => (out += d.toString()) });
    await a.write('ping\n');
    a.eof();
    const doc = await a.ended;
    if (doc) expect('attach', doc.status, 'succeeded');
    else expect('attach', await finished(c, j.id), 'succeeded');
  },
  async attachTtyDropped(c) {
    const j = await c.api.submit({ image: c.image, command: sh('read x; echo got $x'), openStdin: true, tty: true });
    const a = await attachJob(j.id, { baseUrl: c.baseUrl, onOutput: () => {} });
    a.close(); // goes away without a word; the job is ended by the cancel below
    await c.api.cancel(j.id).catch(() => {});
    expect('attachTtyDropped', await finished(c, j.id), ['cancelled', 'succeeded', 'failed']);
  },
};

/** Weighted: mostly cheap jobs, a few of every other kind. */
const MIX: Array<[string, number]> = [
  ['trueWait', 6], ['output', 3], ['stdin', 2], ['timeout', 1], ['cancelRunning', 1], ['cancelQueued', 1], ['failed', 2], ['notFound', 1],
  ['imageMissing', 1], ['pullAlways', 2], ['oom', 1], ['files', 1], ['sseDropped', 1], ['streamDropped', 1], ['sseFollowed', 2], ['attach', 1], ['attachTtyDropped', 1],
];
const SCHEDULE = MIX.flatMap(([k, w]) => Array<string>(w).fill(k));
const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
/** A stride through SCHEDULE prime to its length: every kind comes, interleaved. */
const STRIDE = [7, 11, 13, 17, 19, 23].find((s) => gcd(s, SCHEDULE.length) === 1)!;

function table(rows: Array<{ jobs: number; m: Measures }>): string {
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r.m)))].sort();
  const fmt = (v: number | undefined) => (v === undefined ? '-' : Number.isInteger(v) ? String(v) : v.toFixed(1));
  const lines = [`| measure | ${rows.map((r) => r.jobs).join(' | ')} |`, `| --- |${rows.map(() => ' ---: |').join('')}`];
  for (const k of keys) lines.push(`| ${k} | ${rows.map((r) => fmt(r.m[k])).join(' | ')} |`);
  return lines.join('\n');
}

/** `rss`: judge RSS too (not after a heap snapshot: taking one grows the process's RSS by ~100 MiB for good). */
export function grown(first: { jobs: number; m: Measures }, last: { jobs: number; m: Measures }, rss = true): string[] {
  const out: string[] = [];
  const perJobs = Math.max(1, (last.jobs - first.jobs) / 100);
  for (const k of Object.keys(last.m)) {
    const a = first.m[k] ?? 0;
    const b = last.m[k]!;
    if (/MiB$/.test(k)) {
      if (k !== 'redis.usedMiB' && (rss || !k.endsWith('.rssMiB')) && b > a * 1.25 && b - a > 8) out.push(`${k}: ${a.toFixed(1)} -> ${b.toFixed(1)}`);
    } else if (!k.startsWith('redis') && b - a >= perJobs) out.push(`${k}: ${a} -> ${b}`);
  }
  return out;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      jobs: { type: 'string', default: '3000' }, every: { type: 'string', default: '500' }, concurrency: { type: 'string', default: '6' },
      workers: { type: 'string', default: '1' }, 'heap-diff': { type: 'boolean', default: false }, settle: { type: 'boolean', default: false }, json: { type: 'string' },
    },
  });
  const total = Number(values.jobs), every = Number(values.every), concurrency = Number(values.concurrency);
  const tmpBefore = new Set(readdirSync('/tmp'));
  const stack = await startStack({
    workers: 0,
    env: {
      SBX_TENANT_SUBMITS_PER_SECOND: '0', SBX_TENANT_STREAMS: '0', SBX_TENANT_REQUESTS: '0',
      SBX_JOB_TTL_SECONDS: process.env.SBX_JOB_TTL_SECONDS ?? '60', SBX_WEBHOOK_RETRY_MS: '60000',
      SBX_PULL_ALWAYS_FRESH_MS: '0', NODE_OPTIONS: '--inspect-port=0',
    },
  });
  const inspectors: Inspector[] = [];
  try {
    const workers: Array<{ proc: ManagedProcess; metricsUrl: string }> = [];
    for (let i = 0; i < Number(values.workers); i++) {
      const { worker, metricsUrl } = await startWorkerWithMetrics(stack);
      workers.push({ proc: worker, metricsUrl });
    }
    const procs = [{ name: 'api', proc: stack.api, metricsUrl: `${stack.apiUrl}/metrics` }, ...workers.map((w, i) => ({ name: `w${i + 1}`, ...w }))];
    for (const p of procs) inspectors.push(new Inspector(p.proc));
    const redis = new Redis(stack.env.SBX_REDIS_URL!);
    const ctx: Ctx = { api: new SbxClient({ baseUrl: stack.apiUrl }), baseUrl: stack.apiUrl, image: stack.images.busybox, missing: `${stack.registry.host}/test/no-such-image:latest` };
    const stateDir = stack.env.SBX_STATE_DIR!;
    const cgParent = stack.env.SBX_CGROUP_PARENT!;
    const mountsAtStart = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').length;

    const measure = async (): Promise<Measures> => {
      const m: Measures = {};
      for (const [i, p] of procs.entries()) {
        for (const [k, v] of Object.entries(procMeasures(p.proc.child.pid!))) m[`${p.name}.${k}`] = v;
        for (const [k, v] of Object.entries(await inspectors[i]!.measure())) m[`${p.name}.${k}`] = v;
        m[`${p.name}.metricSeries`] = await series(p.metricsUrl);
      }
      Object.assign(m, await redisMeasures(redis));
      m['state.entries'] = countEntries(stateDir);
      for (const top of readdirSync(stateDir)) m[`state.${top}`] = countEntries(join(stateDir, top)) + 1;
      m['host.mounts+'] = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').length - mountsAtStart;
      m['host.cgroups'] = cgroupDirs(cgParent);
      const newTmp = readdirSync('/tmp').filter((n) => !tmpBefore.has(n) && !stateDir.endsWith(n));
      m['host.tmp+'] = newTmp.length;
      return m;
    };

    const rows: Array<{ jobs: number; m: Measures }> = [];
    const failures = new Map<string, number>();
    const byKind = new Map<string, number>();
    const heaps: Array<Array<Map<string, number>>> = [];
    let done = 0;
    const started = Date.now();
    rows.push({ jobs: 0, m: await measure() });
    process.stderr.write(`soak: stack up, ${procs.map((p) => `${p.name} pid ${p.proc.child.pid}`).join(', ')}\n`);
    while (done < total) {
      const batchEnd = Math.min(total, done + every);
      let next = done;
      await Promise.all(Array.from({ length: concurrency }, async () => {
        while (next < batchEnd) {
          const n = next++;
          const kind = SCHEDULE[(n * STRIDE) % SCHEDULE.length]!;
          byKind.set(kind, (byKind.get(kind) ?? 0) + 1);
          try {
            await KINDS[kind]!(ctx);
          } catch (e) {
            failures.set(kind, (failures.get(kind) ?? 0) + 1);
            if ((failures.get(kind) ?? 0) <= 3) process.stderr.write(`soak: ${kind} failed: ${(e as Error).message}\n`);
          }
        }
      }));
      done = batchEnd;
      await new Promise((r) => setTimeout(r, 2000)); // teardown behind the last answers (cgroups, mounts)
      rows.push({ jobs: done, m: await measure() });
      if (values['heap-diff'] && (rows.length === 2 || done === total)) heaps.push(await Promise.all(inspectors.map((i) => i.heapCounts())));
      process.stderr.write(`soak: ${done} jobs, ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
    }
    if (values.settle) {
      const ttl = Number(stack.env.SBX_JOB_TTL_SECONDS);
      process.stderr.write(`soak: settling ${ttl + 30} s (job TTL + 30 s)\n`);
      await new Promise((r) => setTimeout(r, (ttl + 30) * 1000));
      rows.push({ jobs: done, m: await measure() });
    }
    await redis.quit();
    const growth = grown(rows[1] ?? rows[0]!, rows[values.settle ? rows.length - 2 : rows.length - 1]!, !values['heap-diff']);
    const newTmp = readdirSync('/tmp').filter((n) => !tmpBefore.has(n));
    process.stdout.write(`${table(rows)}\n\njobs by kind: ${JSON.stringify(Object.fromEntries(byKind))}\nfailed: ${JSON.stringify(Object.fromEntries(failures))}\nnew /tmp entries: ${newTmp.slice(0, 20).join(' ')}\n`);
    process.stdout.write(growth.length ? `GROWING with jobs:\n  ${growth.join('\n  ')}\n` : 'nothing grew with jobs between the first and the last checkpoint\n');
    if (heaps.length === 2) {
      for (const [i, p] of procs.entries()) {
        const [a, b] = [heaps[0]![i]!, heaps[1]![i]!];
        const diff = [...b].map(([k, n]) => [k, n - (a.get(k) ?? 0)] as const).filter(([, d]) => d > 0).sort((x, y) => y[1] - x[1]).slice(0, 15);
        process.stdout.write(`${p.name}: heap objects grown between ${rows[1]!.jobs} and ${total} jobs: ${diff.map(([k, d]) => `${k} +${d}`).join(', ') || 'none'}\n`);
      }
    }
    if (values.json) writeFileSync(values.json, JSON.stringify({ rows, byKind: Object.fromEntries(byKind), failures: Object.fromEntries(failures) }, null, 1));
    return growth.length ? 1 : 0;
  } finally {
    for (const i of inspectors) i.close();
    await stack.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) process.exitCode = await main();
