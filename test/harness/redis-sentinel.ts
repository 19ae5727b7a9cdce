/**
 * A private redis-server plus one Sentinel monitoring it (redis-server --sentinel), on free loopback
 * ports, for tests that reach Redis the way a Sentinel deployment does.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './registry.ts';
import { startRedis, waitUntil } from './redis.ts';

const execFileP = promisify(execFile);

export interface RunningRedisSentinel {
  sentinels: string[];
  masterName: string;
  stop(): Promise<void>;
}

export async function startRedisSentinel(masterName = 'sbxmaster'): Promise<RunningRedisSentinel> {
  const master = await startRedis();
  const dir = await mkdtemp(join(tmpdir(), 'sbx-sentinel-'));
  const port = await freePort();
  const conf = join(dir, 'sentinel.conf');
  await writeFile(conf, [`port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, `sentinel monitor ${masterName} 127.0.0.1 ${master.port} 1`, ''].join('\n'));
  const proc: ChildProcess = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' });
  const stop = async () => {
    if (proc.exitCode === null) await new Promise((r) => (proc.once('exit', r), proc.kill('SIGKILL')));
    await master.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitUntil(
      async () => (await execFileP('redis-cli', ['-p', String(port), 'sentinel', 'get-master-addr-by-name', masterName]).then((r) => r.stdout.includes(String(master.port)), () => false)),
      10_000,
      'the sentinel to know its master',
    );
    return { sentinels: [`127.0.0.1:${port}`], masterName, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
