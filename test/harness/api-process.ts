/**
 * One API process (api/src/main.ts, exactly as `npm run api` starts it) on a port the kernel picks
 * (SBX_API_PORT=0): the URL comes from its "sbx API listening" log line, so no port has to stay free.
 */
import { after, before } from 'node:test';
import { spawnSbx, type ManagedProcess } from './stack.ts';
import { startRedis, waitUntil, type RunningRedis } from './redis.ts';

export interface ApiProcess extends ManagedProcess {
  url: string;
  pid: number;
}

/** Start the API and wait until it listens; throws with its log if it exits first. */
export async function startApiProcess(env: Record<string, string>): Promise<ApiProcess> {
  const p = spawnSbx('api', 'api/src/main.ts', { SBX_API_HOST: '127.0.0.1', SBX_API_PORT: '0', ...env, SBX_LOG_LEVEL: 'info' });
  let url = '';
  try {
    await waitUntil(async () => {
      if (p.child.exitCode !== null) throw new Error(`API exited (${p.child.exitCode}):\n${p.log()}`);
      url = /"url":"(http:\/\/[^"]+)"[^\n]*"msg":"sbx API listening"/.exec(p.log())?.[1] ?? '';
      return url !== '';
    }, 30_000, 'the API to listen');
  } catch (e) {
    await p.kill('SIGKILL');
    throw e;
  }
  return { ...p, url: url.replace('://0.0.0.0:', '://127.0.0.1:').replace('://[::]:', '://127.0.0.1:'), pid: p.child.pid! };
}

/** Run the API until it exits by itself (it is expected to refuse to start); its code and output. */
export async function runApiUntilExit(env: Record<string, string>, timeoutMs = 30_000): Promise<{ code: number | null; output: string }> {
  const p = spawnSbx('api', 'api/src/main.ts', { SBX_API_PORT: '0', SBX_LOG_LEVEL: 'info', ...env });
  const exited = new Promise<number | null>((r) => p.child.once('exit', (code) => r(code)));
  const timer = setTimeout(() => void p.kill('SIGKILL'), timeoutMs);
  const code = await exited;
  clearTimeout(timer);
  return { code, output: p.log() };
}

/**
 * A test file's usual setup in one line: a private redis-server and an API process on it (with
 * `env` besides SBX_REDIS_URL), started in before() and stopped in after() of the enclosing suite.
 */
export function useApiProcess(env: Record<string, string> = {}): { readonly api: ApiProcess; readonly redis: RunningRedis } {
  let redis: RunningRedis | null = null;
  let api: ApiProcess | null = null;
  before(async () => {
    redis = await startRedis();
    api = await startApiProcess({ SBX_REDIS_URL: redis.url, ...env });
  });
  after(async () => {
    await api?.kill();
    await redis?.stop();
  });
  const started = <T>(v: T | null): T => {
    if (v === null) throw new Error('the API process is not started yet: use it inside a test or a hook');
    return v;
  };
  return {
    get api() {
      return started(api);
    },
    get redis() {
      return started(redis);
    },
  };
}
