/**
 * A private redis-server (Debian package) on a free loopback port, no persistence, for one test
 * file. stop() kills it; nothing is left on disk: its working directory is a temporary one of its
 * own (a server made a replica, redis-sentinel.ts, writes the master's RDB there as dump.rdb).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { listensOn, onFreePort, PortTakenError, saysPortTaken } from './ports.ts';
import { diesWithParent } from './dies-with-parent.ts';

export interface RunningRedis {
  port: number;
  url: string;
  process: ChildProcess;
  client(): Redis;
  stop(): Promise<void>;
}

/** `bind`: more addresses to listen on beside 127.0.0.1 (e.g. a test bridge's, for workers in other network namespaces: hosts.ts). */
export async function startRedis(opts: { bind?: string[] } = {}): Promise<RunningRedis> {
  return onFreePort((port) => startRedisOn(port, opts.bind ?? []));
}

async function startRedisOn(port: number, extraBind: string[]): Promise<RunningRedis> {
  // Protected mode refuses clients from other addresses than loopback: off only when asked to listen elsewhere.
  const protectedMode = extraBind.length ? 'no' : 'yes';
  const dir = mkdtempSync(join(tmpdir(), 'sbx-redis-'));
  const proc = spawn(...diesWithParent('redis-server', ['--port', String(port), '--bind', '127.0.0.1', ...extraBind, '--save', '', '--appendonly', 'no', '--protected-mode', protectedMode, '--dir', dir, '--loglevel', 'warning']), { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  let log = '';
  proc.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const url = `redis://127.0.0.1:${port}`;
  const clients: Redis[] = [];
  const kill = async () => {
    for (const c of clients) c.disconnect();
    if (proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGKILL');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitForRedisServer(proc, '127.0.0.1', port, () => log, 10_000);
  } catch (e) {
    await kill();
    throw e;
  }
  return {
    port,
    url,
    process: proc,
    client() {
      const c = new Redis(port, '127.0.0.1');
      clients.push(c);
      return c;
    },
    stop: kill,
  };
}

/**
 * Until the redis-server `proc` answers PING on host:port (after loading its data: LOADING errors
 * before). The answer must come from our own server, not from whatever else took the port first.
 */
export async function waitForRedisServer(proc: ChildProcess, host: string, port: number, log: () => string, timeoutMs: number): Promise<void> {
  await waitUntil(async () => {
    if (proc.exitCode !== null) throw saysPortTaken(log()) ? new PortTakenError('redis-server', port, log().trim()) : new Error(`redis-server exited: ${log()}`);
    if (!listensOn(proc.pid, port)) return false;
    const c = new Redis(port, host, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    c.on('error', () => {}); // refused until the server listens: expected here
    try {
      await c.connect();
      return (await c.ping()) === 'PONG';
    } catch {
      return false;
    } finally {
      c.disconnect();
    }
  }, timeoutMs, `redis-server on ${host}:${port}`);
}

export async function waitUntil(check: () => Promise<boolean>, timeoutMs: number, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
