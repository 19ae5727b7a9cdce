/**
 * A private three-master Redis Cluster (Debian redis-server + redis-cli --cluster create) on free
 * loopback ports, no persistence, for tests that prove sbx works against Cluster.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { listensOn, onFreePorts, PortTakenError } from './ports.ts';
import { waitUntil } from './redis.ts';
import { diesWithParent } from './dies-with-parent.ts';

const execFileP = promisify(execFile);

export interface RunningRedisCluster {
  nodes: string[];
  stop(): Promise<void>;
}

export async function startRedisCluster(size = 3): Promise<RunningRedisCluster> {
  return onFreePorts(size, (ports) => startRedisClusterOn(ports));
}

async function startRedisClusterOn(ports: number[]): Promise<RunningRedisCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'sbx-redis-cluster-'));
  const procs: ChildProcess[] = ports.map((port) =>
    spawn(...diesWithParent('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--save', '', '--appendonly', 'no', '--dir', dir, '--loglevel', 'warning']), { stdio: 'ignore' }),
  );
  const stop = async () => {
    await Promise.all(procs.map((p) => (p.exitCode === null ? new Promise((r) => (p.once('exit', r), p.kill('SIGKILL'))) : null)));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const nodes = ports.map((p) => `127.0.0.1:${p}`);
    await waitUntil(async () => {
      // A node that exited lost its port to someone else: start the cluster again on other ports.
      const gone = procs.findIndex((p) => p.exitCode !== null);
      if (gone >= 0) throw new PortTakenError('redis-server (cluster node)', ports[gone]!);
      if (!procs.every((p, i) => listensOn(p.pid, ports[i]!))) return false;
      return (await Promise.all(ports.map((p) => execFileP('redis-cli', ['-p', String(p), 'ping']).then((r) => r.stdout.trim() === 'PONG', () => false)))).every(Boolean);
    }, 10_000, 'cluster nodes');
    await execFileP('redis-cli', ['--cluster', 'create', ...nodes, '--cluster-replicas', '0', '--cluster-yes']);
    await waitUntil(async () => (await execFileP('redis-cli', ['-p', String(ports[0]), 'cluster', 'info'])).stdout.includes('cluster_state:ok'), 15_000, 'cluster_state:ok');
    return { nodes, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
