/**
 * A private redis-server with an append-only file (`--appendonly yes --appendfsync always`) in a
 * temporary directory, which a test can kill (SIGKILL, or SHUTDOWN NOSAVE) and start again on the
 * same address and directory: what comes back is what the AOF kept. It listens on a random
 * 127.x.y.z address (all of 127/8 is loopback) so that between a kill and the restart no other
 * test's server, which binds 127.0.0.1, can take the address; the listening socket is checked to be
 * this server's own (ports.ts).
 *
 * `always`, not the `everysec` the README describes for production: under `everysec`, while a
 * background fsync takes long (a busy disk: other test files write hundreds of MB meanwhile), Redis
 * may hold its AOF writes back for up to 2 s and still answer, so a SIGKILL can lose writes it had
 * acknowledged (README, "Redis restarted"). With `always` Redis answers only what is in its file, so
 * a job lost after a 202 can only be sbx's doing, which is what the chaos test is for. (CI at 8f524f4
 * lost one of 51 accepted jobs to a SIGKILL under `everysec`; three reruns under a concurrent disk
 * writer did not lose one, so which of the two it was is not known.)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { onFreePort } from './ports.ts';
import { waitForRedisServer } from './redis.ts';
import { diesWithParent } from './dies-with-parent.ts';

export interface DurableRedis {
  host: string;
  port: number;
  url: string;
  dir: string;
  process(): ChildProcess;
  /** Kill it (`SIGKILL`, or `shutdown`: SHUTDOWN NOSAVE) and start it again on the same address and directory. */
  restart(how: 'SIGKILL' | 'shutdown', downMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startDurableRedis(): Promise<DurableRedis> {
  const host = `127.${randomInt(1, 255)}.${randomInt(0, 256)}.${randomInt(1, 255)}`;
  const dir = await mkdtemp(join(tmpdir(), 'sbx-redis-aof-'));
  try {
    return await onFreePort(async (port) => {
      let proc = await spawnOn(host, port, dir);
      const stopProc = async (how: 'SIGKILL' | 'shutdown') => {
        if (proc.exitCode !== null || proc.signalCode !== null) return;
        const exited = new Promise((r) => proc.once('exit', r));
        if (how === 'shutdown') {
          const c = new Redis(port, host, { maxRetriesPerRequest: 0, lazyConnect: true });
          c.on('error', () => {});
          await c.connect().then(() => c.call('SHUTDOWN', 'NOSAVE')).catch(() => {}); // the connection drops as it exits
          c.disconnect();
        } else {
          proc.kill('SIGKILL');
        }
        await exited;
      };
      return {
        host,
        port,
        url: `redis://${host}:${port}`,
        dir,
        process: () => proc,
        async restart(how, downMs = 300) {
          await stopProc(how);
          await new Promise((r) => setTimeout(r, downMs));
          proc = await spawnOn(host, port, dir);
        },
        async stop() {
          await stopProc('SIGKILL');
          await rm(dir, { recursive: true, force: true });
        },
      };
    });
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
}

async function spawnOn(host: string, port: number, dir: string): Promise<ChildProcess> {
  const proc = spawn(...diesWithParent('redis-server', [
    '--port', String(port), '--bind', host, '--dir', dir, '--save', '',
    '--appendonly', 'yes', '--appendfsync', 'always', '--protected-mode', 'yes', '--loglevel', 'warning',
  ]), { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  try {
    await waitForRedisServer(proc, host, port, () => log, 20_000); // answers once the AOF is loaded
  } catch (e) {
    if (proc.exitCode === null) proc.kill('SIGKILL');
    throw e;
  }
  return proc;
}
