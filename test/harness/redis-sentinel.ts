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

const execFileP = promisify(execFile);

export interface RunningRedisSentinel {
  sentinels: string[];
  masterName: string;
  stop(): Promise<void>;
}

export async function startRedisSentinel(masterName = 'sbxmaster'): Promise<RunningRedisSentinel> {
  const master = await startRedis();
  try {
    return await onFreePort((port) => startSentinelOn(port, master, masterName));
  } catch (e) {
    await master.stop();
    throw e;
  }
}

async function startSentinelOn(port: number, master: RunningRedis, masterName: string): Promise<RunningRedisSentinel> {
  const dir = await mkdtemp(join(tmpdir(), 'sbx-sentinel-'));
  const conf = join(dir, 'sentinel.conf');
  await writeFile(conf, [`port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, `sentinel monitor ${masterName} 127.0.0.1 ${master.port} 1`, ''].join('\n'));
  const proc: ChildProcess = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' });
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
      await master.stop();
    };
    return { sentinels: [`127.0.0.1:${port}`], masterName, stop };
  } catch (e) {
    await stopSentinel();
    throw e;
  }
}
