/**
 * A private redis-server plus the Sentinels monitoring it (redis-server --sentinel), on free loopback
 * ports, for tests that reach Redis the way a Sentinel deployment does: one Sentinel by default, or
 * several agreeing by a majority (`sentinels: 3`) with timings small enough (`downAfterMs`) for a
 * test to SIGKILL the master and see its replica promoted within seconds (failover('kill')).
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { listensOn, onFreePorts, PortTakenError } from './ports.ts';
import { startRedis, waitUntil, type RunningRedis } from './redis.ts';
import { diesWithParent } from './dies-with-parent.ts';

const execFileP = promisify(execFile);

export interface RunningRedisSentinel {
  sentinels: string[];
  masterName: string;
  /** The redis-server the Sentinels monitor first (the master until a failover). */
  master: RunningRedis;
  /**
   * Fails the master over to a replica (startRedisSentinel's `replicas`: one is needed); resolves
   * once every Sentinel names the new master and it says role:master.
   * `clean` (the default): SENTINEL FAILOVER, the master demoted in an orderly way.
   * `kill`: SIGKILL of the master. Until the Sentinels agree it is down (`downAfterMs`, then a
   * quorum, then an election) they still name it and every connection to it is refused; what it had
   * not replicated is lost, as in a real crash. It stays down.
   * Returns the old master's and the new one's addresses.
   */
  failover(how?: 'clean' | 'kill'): Promise<{ from: string; to: string }>;
  stop(): Promise<void>;
}

export interface RedisSentinelOptions {
  /** Replicas of the master, in sync before the Sentinels start (so they know them at once): a failover needs one. */
  replicas?: number;
  /**
   * Sentinels (default 1, quorum 1). More: the quorum is a majority of them, as in a deployment
   * (three Sentinels, quorum 2), and each knows the others before this resolves.
   */
  sentinels?: number;
  /**
   * down-after-milliseconds (Sentinel's default 30 s): how long the master may not answer before a
   * Sentinel counts it down. Small in tests so a hard failover takes a second or three, not thirty.
   */
  downAfterMs?: number;
  /**
   * failover-timeout (Sentinel's default 180 s): among others, how long after a failover attempt
   * that did not happen (a split vote) a Sentinel waits (twice this) before trying again.
   */
  failoverTimeoutMs?: number;
}

export async function startRedisSentinel(masterName = 'sbxmaster', opts: RedisSentinelOptions = {}): Promise<RunningRedisSentinel> {
  const master = await startRedis();
  const replicas: RunningRedis[] = [];
  try {
    // Redis 7 syncs replicas without a disk, waiting 5 s for more to join first: none will.
    if (opts.replicas) await master.client().config('SET', 'repl-diskless-sync-delay', '0');
    for (let i = 0; i < (opts.replicas ?? 0); i++) replicas.push(await startReplica(master));
    return await onFreePorts(opts.sentinels ?? 1, (ports) => startSentinelsOn(ports, master, masterName, replicas, opts));
  } catch (e) {
    for (const r of replicas) await r.stop();
    await master.stop();
    throw e;
  }
}

async function startReplica(master: RunningRedis): Promise<RunningRedis> {
  const replica = await startRedis();
  const c = replica.client();
  await c.call('REPLICAOF', '127.0.0.1', String(master.port));
  await waitUntil(async () => /master_link_status:up/.test(await c.info('replication')), 10_000, 'the replica to sync');
  return replica;
}

const sentinelCli = async (port: number, ...args: string[]) => (await execFileP('redis-cli', ['-p', String(port), 'sentinel', ...args])).stdout.trim();

/** The master's port as the Sentinel on `port` names it. */
const namedMasterPort = async (port: number, masterName: string): Promise<string> => (await sentinelCli(port, 'get-master-addr-by-name', masterName)).split('\n')[1] ?? '';

interface SentinelProcess {
  port: number;
  proc: ChildProcess;
  stop(): Promise<void>;
}

/** One `redis-server --sentinel` on `port` with its own config file (it rewrites it) in a temporary directory. */
async function spawnSentinel(port: number, masterName: string, master: RunningRedis, opts: RedisSentinelOptions): Promise<SentinelProcess> {
  const dir = await mkdtemp(join(tmpdir(), 'sbx-sentinel-'));
  const conf = join(dir, 'sentinel.conf');
  const quorum = Math.floor((opts.sentinels ?? 1) / 2) + 1;
  await writeFile(conf, [
    `port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, `sentinel monitor ${masterName} 127.0.0.1 ${master.port} ${quorum}`,
    ...(opts.downAfterMs === undefined ? [] : [`sentinel down-after-milliseconds ${masterName} ${opts.downAfterMs}`]),
    ...(opts.failoverTimeoutMs === undefined ? [] : [`sentinel failover-timeout ${masterName} ${opts.failoverTimeoutMs}`]),
    '',
  ].join('\n'));
  const proc: ChildProcess = spawn(...diesWithParent('redis-server', [conf, '--sentinel']), { stdio: 'ignore' });
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) await new Promise((r) => (proc.once('exit', r), proc.kill('SIGKILL')));
    await rm(dir, { recursive: true, force: true });
  };
  return { port, proc, stop };
}

async function startSentinelsOn(ports: number[], master: RunningRedis, masterName: string, replicas: RunningRedis[], opts: RedisSentinelOptions): Promise<RunningRedisSentinel> {
  const sentinels: SentinelProcess[] = [];
  const stopSentinels = async () => {
    for (const s of sentinels) await s.stop();
  };
  try {
    for (const port of ports) sentinels.push(await spawnSentinel(port, masterName, master, opts));
    await waitUntil(async () => {
      for (const s of sentinels) if (!(await knowsTheDeployment(s, masterName, master, replicas.length, sentinels.length))) return false;
      return true;
    }, 15_000, 'every sentinel to know its master, its replicas and the other sentinels');
  } catch (e) {
    await stopSentinels();
    throw e;
  }
  const stop = async () => {
    await stopSentinels();
    for (const r of replicas) await r.stop();
    await master.stop();
  };
  const failover = async (how: 'clean' | 'kill' = 'clean') => {
    const before = await namedMasterPort(ports[0]!, masterName);
    if (how === 'clean') {
      // The Sentinel learns of replicas from the master's INFO: wait until it can promote one.
      await waitUntil(async () => !(await sentinelCli(ports[0]!, 'failover', masterName)).includes('NOGOODSLAVE'), 15_000, 'the sentinel to accept a failover');
    } else {
      const dead = [master, ...replicas].find((r) => String(r.port) === before);
      if (!dead) throw new Error(`the sentinels name 127.0.0.1:${before}, none of this deployment's servers`);
      await dead.stop(); // SIGKILL
    }
    let after = before;
    await waitUntil(async () => {
      const named = await Promise.all(ports.map((p) => namedMasterPort(p, masterName).catch(() => undefined)));
      after = named[0] ?? before;
      if (after === before || named.some((n) => n !== after)) return false;
      return execFileP('redis-cli', ['-p', after, 'info', 'replication']).then((r) => r.stdout.includes('role:master'), () => false);
    }, 20_000, `the sentinels to name a new master in place of 127.0.0.1:${before}`);
    return { from: `127.0.0.1:${before}`, to: `127.0.0.1:${after}` };
  };
  return { sentinels: ports.map((p) => `127.0.0.1:${p}`), masterName, master, failover, stop };
}

/**
 * Whether the Sentinel `s` is up on its own port and names `master`, knows its `replicas` replicas
 * and its `sentinels` - 1 peers (they find each other through the master's hello channel, every 2 s):
 * a hard failover needs a quorum that knows the replica it may promote.
 */
async function knowsTheDeployment(s: SentinelProcess, masterName: string, master: RunningRedis, replicas: number, sentinels: number): Promise<boolean> {
  if (s.proc.exitCode !== null) throw new PortTakenError('redis-server --sentinel', s.port);
  if (!listensOn(s.proc.pid, s.port)) return false;
  try {
    if ((await namedMasterPort(s.port, masterName)) !== String(master.port)) return false;
    if (replicas && (await sentinelCli(s.port, 'replicas', masterName)).split('\n').filter((l) => l === 'name').length < replicas) return false;
    if (sentinels > 1 && (await sentinelCli(s.port, 'sentinels', masterName)).split('\n').filter((l) => l === 'name').length < sentinels - 1) return false;
    return true;
  } catch {
    return false;
  }
}
