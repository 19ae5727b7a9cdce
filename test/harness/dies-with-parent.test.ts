/**
 * The harness's servers die with the process that started them: a test file that crashes or is
 * killed (SIGKILL: no `after` hook, no exit handler) leaves no redis-server or registry behind on
 * the machine, where it would hold memory and ports for every later run.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { waitUntil } from './redis.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
/** The child's TMPDIR: the servers' directories, which a SIGKILLed child cannot remove, are removed with it. */
const childTmp = mkdtempSync(join(tmpdir(), 'sbx-dies-with-parent-'));
after(() => rmSync(childTmp, { recursive: true, force: true }));

/** Starts `code` (an ES module using the harness) in a node process of its own; its stdout's first line is the pids it printed. */
async function pidsFromChild(code: string): Promise<{ pids: number[]; kill: () => void }> {
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: ROOT, env: { ...process.env, TMPDIR: childTmp }, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const line = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out.split('\n')[0]!);
    });
    child.once('exit', (code) => reject(new Error(`the child exited (${code}) before printing its pids`)));
  });
  return { pids: line.split(' ').map(Number), kill: () => child.kill('SIGKILL') };
}

/** The process exists and is not a zombie (`/proc/<pid>/status`). */
function alive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

test('a redis-server and a registry of the harness are gone once the process that started them is SIGKILLed', async () => {
  const { pids, kill } = await pidsFromChild(`
    import { startRedis } from './test/harness/redis.ts';
    import { startRegistry } from './test/harness/registry.ts';
    const redis = await startRedis();
    const registry = await startRegistry();
    process.stdout.write(redis.process.pid + ' ' + registry.pid + '\\n');
    setInterval(() => {}, 1000);
  `);
  assert.equal(pids.length, 2);
  assert.ok(pids.every(alive), 'both run while their parent does');
  kill();
  await waitUntil(async () => !pids.some(alive), 10_000, 'the redis-server and the registry to exit');
  assert.deepEqual(readdirSync(childTmp).filter((d) => d.startsWith('sbx-')).map((d) => d.replace(/-[^-]+$/, '')).sort(), ['sbx-redis', 'sbx-registry'], 'their directories were made in the child\'s TMPDIR (removed after)');
});
