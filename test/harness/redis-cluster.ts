/**
 * A private Redis Cluster (Debian redis-server + redis-cli --cluster create) on free loopback ports,
 * no persistence, for tests that prove sbx works against Cluster: three masters by default, or with
 * a replica per master (`replicas: 1`) for tests that fail a master over (failover()).
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { listensOn, onFreePorts, PortTakenError } from './ports.ts';
import { waitUntil } from './redis.ts';
import { diesWithParent } from './dies-with-parent.ts';
import { clusterView, type ClusterNode } from './redis-cluster-view.ts';

const execFileP = promisify(execFile);

export interface RunningRedisCluster {
  nodes: string[];
  /**
   * Fails over the master serving `key`'s slot to its replica (needs `replicas: 1`) the hard way: a
   * SIGKILL of the master; the replica promotes itself once the others have marked the master
   * failed (about cluster-node-timeout later). What the master had not yet replicated is lost, as in
   * a real crash. The killed node stays down. Resolves once every live node names the replica as
   * the slot's master and says cluster_state:ok. `whileDown` runs once the master is killed, before
   * the wait for the promotion: what a test sends then meets the slot without a master.
   * Returns the killed master's and its successor's addresses.
   */
  failover(key: string, whileDown?: () => void): Promise<{ from: string; to: string }>;
  /** The addresses of the masters serving slots now (a test reading every key reads each). */
  masters(): Promise<string[]>;
  stop(): Promise<void>;
}

export interface RedisClusterOptions {
  /** Masters (default 3: Redis Cluster's fewest for a failover to be agreed on). */
  masters?: number;
  /** Replicas per master (default 0). */
  replicas?: number;
  /**
   * cluster-node-timeout (Redis' default 15 s): how long a master may not answer before it counts as
   * failed. Small in tests so a hard failover takes a second or two, not fifteen.
   */
  nodeTimeoutMs?: number;
}

/** `size`, a number: that many masters, no replicas (the old signature, still used). */
export async function startRedisCluster(opts: number | RedisClusterOptions = {}): Promise<RunningRedisCluster> {
  const o = typeof opts === 'number' ? { masters: opts } : opts;
  const masters = o.masters ?? 3;
  const replicas = o.replicas ?? 0;
  return onFreePorts(masters * (1 + replicas), (ports) => startRedisClusterOn(ports, replicas, o.nodeTimeoutMs));
}

async function startRedisClusterOn(ports: number[], replicas: number, nodeTimeoutMs?: number): Promise<RunningRedisCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'sbx-redis-cluster-'));
  const tuning = nodeTimeoutMs === undefined ? [] : [
    '--cluster-node-timeout', String(nodeTimeoutMs),
    // A replica whose link to its master has been down "too long" (a factor of the node timeout)
    // refuses to take over; with a timeout this small, a busy host could make it refuse for good.
    '--cluster-replica-validity-factor', '0',
  ];
  const procs = new Map<number, ChildProcess>(ports.map((port) => [port, spawn(...diesWithParent('redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`),
    '--save', '', '--appendonly', 'no', '--dir', dir, '--loglevel', 'warning', ...tuning,
  ]), { stdio: 'ignore' })]));
  const running = (p: ChildProcess) => p.exitCode === null && p.signalCode === null;
  const stop = async () => {
    await Promise.all([...procs.values()].map((p) => (running(p) ? new Promise((r) => (p.once('exit', r), p.kill('SIGKILL'))) : null)));
    await rm(dir, { recursive: true, force: true });
  };
  const cli = async (port: number, ...args: string[]) => (await execFileP('redis-cli', ['-p', String(port), ...args])).stdout.trim();
  const livePorts = () => ports.filter((p) => running(procs.get(p)!));
  /** Every live node says cluster_state:ok and agrees with `ok`; each live replica has synced with its master. */
  const settled = async (ok: (view: ClusterNode[]) => boolean) => {
    for (const port of livePorts()) {
      if (!(await cli(port, 'cluster', 'info')).includes('cluster_state:ok')) return false;
      if (!ok(clusterView(await cli(port, 'cluster', 'nodes')))) return false;
      const replication = await cli(port, 'info', 'replication');
      if (replication.includes('role:slave') && !replication.includes('master_link_status:up')) return false;
    }
    return true;
  };
  try {
    const nodes = ports.map((p) => `127.0.0.1:${p}`);
    await waitUntil(async () => {
      // A node that exited lost its port to someone else: start the cluster again on other ports.
      const gone = ports.find((p) => !running(procs.get(p)!));
      if (gone !== undefined) throw new PortTakenError('redis-server (cluster node)', gone);
      if (!ports.every((p) => listensOn(procs.get(p)!.pid, p))) return false;
      return (await Promise.all(ports.map((p) => cli(p, 'ping').then((r) => r === 'PONG', () => false)))).every(Boolean);
    }, 10_000, 'cluster nodes');
    await execFileP('redis-cli', ['--cluster', 'create', ...nodes, '--cluster-replicas', String(replicas), '--cluster-yes']);
    const shards = ports.length / (1 + replicas);
    const whole = (view: ClusterNode[]) => view.filter((n) => n.master && n.slots.length).length === shards
      && view.filter((n) => !n.master && n.masterId).length === ports.length - shards;
    await waitUntil(() => settled(whole).catch(() => false), 15_000, 'cluster_state:ok on every node');

    const failover = async (key: string, whileDown?: () => void) => {
      const slot = Number(await cli(livePorts()[0]!, 'cluster', 'keyslot', key));
      const view = clusterView(await cli(livePorts()[0]!, 'cluster', 'nodes'));
      const master = view.find((n) => n.master && !n.failed && n.slots.some(([a, b]) => a <= slot && slot <= b));
      const replica = view.find((n) => !n.master && !n.failed && n.masterId === master?.id);
      if (!master || !replica) throw new Error(`no master with a live replica for slot ${slot} (${key}): ${JSON.stringify(view)}`);
      const p = procs.get(master.port)!;
      await new Promise((r) => (p.once('exit', r), p.kill('SIGKILL')));
      whileDown?.();
      const promoted = (v: ClusterNode[]) => v.some((n) => n.id === replica.id && n.master && n.slots.some(([a, b]) => a <= slot && slot <= b));
      await waitUntil(() => settled(promoted).catch(() => false), 20_000, `${replica.address} to serve slot ${slot} (${key}) on every node`);
      return { from: master.address, to: replica.address };
    };
    const masters = async () => clusterView(await cli(livePorts()[0]!, 'cluster', 'nodes')).filter((n) => n.master && !n.failed && n.slots.length).map((n) => n.address);
    return { nodes, failover, masters, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
