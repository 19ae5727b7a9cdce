/**
 * What one job costs the machine, for `npm run bench:e2e`: CPU time of each process of the stack
 * (API, workers, redis-server, the job processes the workers reaped, this client) read from
 * /proc/<pid>/stat, the kernel's (its threads, and interrupts) and the whole machine's from /proc,
 * and Redis commands and socket reads (≈ round trips: a pipeline arrives in one read) from INFO.
 * Take a snapshot before and after a phase; costPerJob() divides the difference by the jobs the
 * phase ran.
 */
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { procStatFields } from '../../core/src/proc-stat.ts';
import { connectionNames, monitorRedis } from '../../test/harness/redis-monitor.ts';
import { kernelThreadsCpu, machineCpu, TICK_MS, type MachineCpu } from './machine-cpu.ts';
import { r2 } from './stats.ts';

export interface ProcTimes {
  /** utime, stime of the process itself (all its threads), ms. */
  user: number;
  sys: number;
  /** cutime, cstime: children it waited for (a worker: the jobs' processes), ms. */
  childUser: number;
  childSys: number;
  /** /proc/<pid>/io syscr, syscw: read- and write-type system calls (socket reads and writes included). */
  syscr: number;
  syscw: number;
}

export interface Snapshot {
  at: number;
  procs: Record<string, ProcTimes | null>;
  machine: MachineCpu | null;
  /** kernelThreadsCpu(): ms so far of the kernel's threads. */
  kernelThreads: number | null;
  client: NodeJS.CpuUsage;
  redis: { commands: Record<string, number>; reads: number; writes: number } | null;
}

export interface CostPerJob {
  jobs: number;
  /** ms of CPU per job by process: user / sys. `jobs` = the workers' reaped children (the jobs themselves). */
  cpu_ms: Record<string, { user: number; sys: number; total: number }>;
  /** Read- and write-type system calls per job by process (each socket write is one; what batching saves). */
  syscalls: Record<string, { reads: number; writes: number }>;
  /** Sum over the stack's processes (API, workers, Redis, jobs), without this client. */
  stack_cpu_ms: number;
  /**
   * The kernel's own work per job. `threads`: its threads (kworkers, ksoftirqd, RCU: e.g. network
   * namespaces and cgroups released after a job), which no process of the stack is charged for.
   * `interrupts`: /proc/stat's irq + softirq; not a part of its own: the tick charges it to whatever
   * it interrupted too (a process of the stack, a kernel thread), so it is not added up with the
   * rest. Null where /proc does not say.
   */
  kernel_cpu_ms: { threads: number; interrupts: number } | null;
  /** /proc/stat: everything the machine did (other work on it too), ms per job. */
  machine_cpu_ms: { busy: number; user: number; sys: number } | null;
  /** The machine's busy time that none of the above accounts for: other processes, steal, kernel threads that exited. */
  rest_cpu_ms: number | null;
  redis: { commands: number; reads: number; writes: number; top: Record<string, number> } | null;
}

/** pid per name (api, worker-1, …, redis): whatever of them exist; `redisUrl` for INFO. */
export class CostMeter {
  private readonly redis: Redis | null;

  constructor(
    private readonly pids: Record<string, number | undefined>,
    redisUrl: string | null,
  ) {
    this.redis = redisUrl ? new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 }) : null;
    this.redis?.on('error', () => {});
  }

  async snapshot(): Promise<Snapshot> {
    const procs: Record<string, ProcTimes | null> = {};
    for (const [name, pid] of Object.entries(this.pids)) procs[name] = pid ? procTimes(pid) : null;
    return { at: performance.now(), procs, machine: machineCpu(), kernelThreads: kernelThreadsCpu(), client: process.cpuUsage(), redis: await this.redisStats() };
  }

  async close(): Promise<void> {
    this.redis?.disconnect();
  }

  private async redisStats(): Promise<Snapshot['redis']> {
    if (!this.redis) return null;
    try {
      if (this.redis.status === 'wait') await this.redis.connect();
      const text = (await this.redis.info('all')) as string;
      const commands: Record<string, number> = {};
      for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) commands[m[1]!] = Number(m[2]);
      const num = (k: string) => Number(new RegExp(`^${k}:(\\d+)`, 'm').exec(text)?.[1] ?? NaN);
      return { commands, reads: num('total_reads_processed'), writes: num('total_writes_processed') };
    } catch {
      return null;
    }
  }
}

/** The redis-server's pid, from INFO (when the bench did not start it). */
export async function redisPid(url: string): Promise<number | undefined> {
  const c = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  c.on('error', () => {});
  try {
    await c.connect();
    const m = /^process_id:(\d+)/m.exec((await c.info('server')) as string);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  } finally {
    c.disconnect();
  }
}


export function costPerJob(a: Snapshot, b: Snapshot, jobs: number): CostPerJob {
  const cpu: CostPerJob['cpu_ms'] = {};
  const syscalls: CostPerJob['syscalls'] = {};
  const per = (ms: number) => ms / Math.max(1, jobs);
  const add = (name: string, user: number, sys: number) => {
    const prev = cpu[name] ?? { user: 0, sys: 0, total: 0 };
    cpu[name] = { user: prev.user + per(user), sys: prev.sys + per(sys), total: prev.total + per(user + sys) };
  };
  for (const [name, before] of Object.entries(a.procs)) {
    const after = b.procs[name];
    if (!before || !after) continue;
    const group = name.startsWith('worker') ? 'workers' : name;
    add(group, after.user - before.user, after.sys - before.sys);
    if (Number.isFinite(after.syscr - before.syscr)) {
      const calls = syscalls[group] ?? { reads: 0, writes: 0 };
      syscalls[group] = { reads: calls.reads + per(after.syscr - before.syscr), writes: calls.writes + per(after.syscw - before.syscw) };
    }
    // A worker waits for its jobs' pid 1 (pidfd); their CPU shows up in its children's times.
    if (name.startsWith('worker')) add('jobs', after.childUser - before.childUser, after.childSys - before.childSys);
  }
  const stack = Object.values(cpu).reduce((n, c) => n + c.total, 0);
  add('client', (b.client.user - a.client.user) / 1000, (b.client.system - a.client.system) / 1000);
  for (const c of Object.values(syscalls)) {
    c.reads = r2(c.reads);
    c.writes = r2(c.writes);
  }
  for (const c of Object.values(cpu)) {
    c.user = r2(c.user);
    c.sys = r2(c.sys);
    c.total = r2(c.total);
  }
  const machine = a.machine && b.machine ? { busy: r2(per(b.machine.busy - a.machine.busy)), user: r2(per(b.machine.user - a.machine.user)), sys: r2(per(b.machine.sys - a.machine.sys)) } : null;
  const kernel = a.machine && b.machine && a.kernelThreads !== null && b.kernelThreads !== null
    ? { threads: r2(per(Math.max(0, b.kernelThreads - a.kernelThreads))), interrupts: r2(per(b.machine.irq - a.machine.irq)) }
    : null;
  const rest = machine && kernel ? r2(machine.busy - stack - (cpu.client?.total ?? 0) - kernel.threads) : null;
  let redis: CostPerJob['redis'] = null;
  if (a.redis && b.redis) {
    const deltas: Array<[string, number]> = [];
    let total = 0;
    for (const [cmd, calls] of Object.entries(b.redis.commands)) {
      if (cmd === 'info') continue; // the meter's own
      const d = calls - (a.redis.commands[cmd] ?? 0);
      if (d > 0) deltas.push([cmd, d]);
      total += d;
    }
    deltas.sort((x, y) => y[1] - x[1]);
    const top = Object.fromEntries(deltas.slice(0, 12).map(([cmd, d]) => [cmd, r2(per(d))]));
    // The meter's own INFO: one read and one write each.
    redis = { commands: r2(per(total)), reads: r2(per(b.redis.reads - a.redis.reads - 1)), writes: r2(per(b.redis.writes - a.redis.writes - 1)), top };
  }
  return { jobs, cpu_ms: cpu, syscalls, stack_cpu_ms: r2(stack), kernel_cpu_ms: kernel, machine_cpu_ms: machine, rest_cpu_ms: rest, redis };
}

/** One line per process for the console. */
export function formatCost(c: CostPerJob): string {
  const parts = Object.entries(c.cpu_ms).map(([n, v]) => `${n} ${v.total} (${v.user}u+${v.sys}s)`);
  const kernel = c.kernel_cpu_ms ? `; kernel threads ${c.kernel_cpu_ms.threads} (interrupts ${c.kernel_cpu_ms.interrupts}, within the above)` : '';
  const whole = c.machine_cpu_ms ? `; whole machine ${c.machine_cpu_ms.busy}${c.rest_cpu_ms !== null ? ` (rest ${c.rest_cpu_ms})` : ''}` : '';
  const lines = [`  CPU ms per job: ${parts.join(', ')}; stack ${c.stack_cpu_ms}${kernel}${whole}`];
  lines.push(`  system calls per job (read / write type): ${Object.entries(c.syscalls).map(([n, v]) => `${n} ${v.reads} / ${v.writes}`).join(', ')}`);
  if (c.redis) {
    lines.push(`  Redis per job: ${c.redis.commands} commands, ${c.redis.reads} socket reads (≈ round trips), ${c.redis.writes} writes; ${Object.entries(c.redis.top).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  }
  return lines.join('\n');
}

function procTimes(pid: number): ProcTimes | null {
  try {
    const field = procStatFields(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    const t = (n: number) => Number(field(n)) * TICK_MS;
    return { user: t(14), sys: t(15), childUser: t(16), childSys: t(17), ...ioCalls(pid) };
  } catch {
    return null;
  }
}

/** /proc/<pid>/io needs ptrace access (another user's process): NaN then, and no syscall figures. */
function ioCalls(pid: number): { syscr: number; syscw: number } {
  const io = safe(() => readFileSync(`/proc/${pid}/io`, 'utf8'), '');
  const count = (k: string) => Number(new RegExp(`^${k}: (\\d+)`, 'm').exec(io)?.[1] ?? NaN);
  return { syscr: count('syscr'), syscw: count('syscw') };
}

function safe<T>(f: () => T, fallback: T): T {
  try {
    return f();
  } catch {
    return fallback;
  }
}

/**
 * The Redis commands `jobs` sequential jobs send, by connection name (CLIENT LIST), from MONITOR:
 * top-level commands per job (a script counts once) and how many ran inside scripts. Counts only:
 * MONITOR slows Redis down, so no timing is taken meanwhile.
 */
export async function traceCommands(redisUrl: string, jobs: number, runOne: () => Promise<unknown>): Promise<{ jobs: number; per_job: Record<string, { total: number; commands: Record<string, number> }>; top_level: number; in_scripts: number }> {
  const names = await connectionNames(redisUrl);
  const seen = new Map<string, Map<string, number>>();
  let inScripts = 0;
  const monitor = await monitorRedis(redisUrl, ({ source, args }) => {
    if (source === 'lua') return void inScripts++;
    // BullMQ's blocking connections are named after the queue (base64): one row for them.
    const raw = names.has(source) ? names.get(source) || 'unnamed' : 'other';
    const name = raw.startsWith('{') ? 'bullmq-blocking' : raw;
    const m = seen.get(name) ?? new Map<string, number>();
    seen.set(name, m);
    const cmd = args[0]!.toLowerCase();
    m.set(cmd, (m.get(cmd) ?? 0) + 1);
  });
  try {
    await new Promise((r) => setTimeout(r, 100));
    for (let i = 0; i < jobs; i++) await runOne();
    await new Promise((r) => setTimeout(r, 300)); // the worker's last commands after the answer
  } finally {
    await monitor.stop();
  }
  const perJob: Record<string, { total: number; commands: Record<string, number> }> = {};
  let total = 0;
  for (const [name, m] of [...seen].sort()) {
    const n = [...m.values()].reduce((a, b) => a + b, 0);
    total += n;
    perJob[name] = { total: r2(n / jobs), commands: Object.fromEntries([...m].sort((a, b) => b[1] - a[1]).map(([c, k]) => [c, r2(k / jobs)])) };
  }
  return { jobs, per_job: perJob, top_level: r2(total / jobs), in_scripts: r2(inScripts / jobs) };
}
