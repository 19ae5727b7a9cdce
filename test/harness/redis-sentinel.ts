/**
 * A private redis-server plus one Sentinel monitoring it (redis-server --sentinel), on free loopback
 * ports, for tests that reach Redis the way a Sentinel deployment does.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { listensOn, onFreePort, PortTakenError } from './ports.ts';
import { startRedis, waitUntil, type RunningRedis } from './redis.ts';
import { diesWithParent } from './dies-with-parent.ts';

const execFileP = promisify(execFile);

export interface RunningRedisSentinel {
  sentinels: string[];
  masterName: string;
  /** The redis-server the Sentinel monitors first (the master until a failover). */
  master: RunningRedis;
  /** Sentinel promotes the replica (startRedisSentinel's `replicas`) and demotes the master; resolves once it names the new one. */
  failover(): Promise<void>;
  stop(): Promise<void>;
}

/** `replicas`: replicas of the master, in sync before the Sentinel starts (so it knows them at once): a failover needs one. */
export async function startRedisSentinel(masterName = 'sbxmaster', opts: { replicas?: number } = {}): Promise<RunningRedisSentinel> {
  const master = await startRedis();
  const replicas: RunningRedis[] = [];
  try {
    for (let i = 0; i < (opts.replicas ?? 0); i++) replicas.push(await startReplica(master));
    return await onFreePort((port) => startSentinelOn(port, master, masterName, replicas));
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

async function startSentinelOn(port: number, master: RunningRedis, masterName: string, replicas: RunningRedis[] = []): Promise<RunningRedisSentinel> {
  const dir = await mkdtemp(join(tmpdir(), 'sbx-sentinel-'));
  const conf = join(dir, 'sentinel.conf');
  await writeFile(conf, [`port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, `sentinel monitor ${masterName} 127.0.0.1 ${master.port} 1`, ''].join('\n'));
  const proc: ChildProcess = spawn(...diesWithParent('redis-server', [conf, '--sentinel']), { stdio: 'ignore' });
  const stopSentinel = async () => {
    if (proc.exitCode === null && proc.signalCode === null) await new Promise((r) => (proc.once('exit', r), proc.kill('SIGKILL')));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitUntil(
      async () => {
        if (proc.exitCode !== null) throw new PortTakenError('redis-server --sentinel', port);
        if (!listensOn(proc.pid, port)) return false;
        return execFileP('redis-cli', ['-p', String(port), 'sentinel', 'get-master-addr-by-name', masterName]).then((r) => r.stdout.includes(String(master.port)), () => false);
      },
      10_000,
      'the sentinel to know its master',
    );
    const stop = async () => {
      await stopSentinel();
      for (const r of replicas) await r.stop();
      await master.stop();
    };
    const masterPort = async () => (await execFileP('redis-cli', ['-p', String(port), 'sentinel', 'get-master-addr-by-name', masterName])).stdout.trim().split('\n')[1];
    const failover = async () => {
      const before = await masterPort();
      // The Sentinel learns of replicas from the master's INFO: wait until it can promote one.
      await waitUntil(async () => !(await execFileP('redis-cli', ['-p', String(port), 'sentinel', 'failover', masterName])).stdout.includes('NOGOODSLAVE'), 15_000, 'the sentinel to accept a failover');
      await waitUntil(async () => (await masterPort()) !== before, 15_000, 'the sentinel to name the new master');
    };
    return { sentinels: [`127.0.0.1:${port}`], masterName, master, failover, stop };
  } catch (e) {
    await stopSentinel();
    throw e;
  }
}
