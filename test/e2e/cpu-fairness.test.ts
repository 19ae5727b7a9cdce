/**
 * CPU weight per tenant on a real worker (worker/src/tenant-cpu-shares.ts): while tenant A runs 3
 * jobs on the host alone they keep the kernel's default weight; once tenant B's job runs beside them
 * each of A's gets a third of it, so A's three together weigh what B's one does; when B's job ends,
 * A's go back to the default. Read from the jobs' own cgroups (v1 cpu.shares, v2 cpu.weight), where
 * the worker's debug log says they are. What it does to a neighbour's latency: npm run bench:neighbours.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { SbxClient } from '../harness/api-client.ts';
import { waitUntil } from '../harness/redis.ts';
import type { ManagedProcess } from '../harness/stack.ts';
import { useStack } from '../harness/use-stack.ts';

const KEY_A = 'key-cpu-alpha-aaaaaaaaaaaaaaaa';
const KEY_B = 'key-cpu-beta-bbbbbbbbbbbbbbbbb';
const KEY_ADMIN = 'key-cpu-admin-cccccccccccccccc';
let worker: ManagedProcess;
let a: SbxClient;
let b: SbxClient;

const e2e = useStack({ workers: 0, adminKey: KEY_ADMIN, env: { SBX_API_KEYS: `${KEY_A}:alpha,${KEY_B}:beta,${KEY_ADMIN}:ops:admin` } }, {
  then: async ({ stack }) => {
    worker = await stack.startWorker({ SBX_WORKER_SLOTS: '4', SBX_LOG_LEVEL: 'debug' });
    a = new SbxClient(stack.apiUrl, KEY_A);
    b = new SbxClient(stack.apiUrl, KEY_B);
  },
});

/** The job's CPU weight in v1 cpu.shares units, from the cgroup the worker logged for it. */
function sharesOf(jobId: string): number {
  const line = worker.log().split('\n').find((l) => l.includes('"job started"') && l.includes(jobId));
  assert.ok(line, `the worker logged ${jobId}'s start`);
  const dirs = (JSON.parse(line) as { cgroups: string[] }).cgroups;
  for (const [file, toShares] of [['cpu.shares', (v: number) => v], ['cpu.weight', (v: number) => Math.round((v * 1024) / 100)]] as const) {
    const dir = dirs.find((d) => existsSync(join(d, file)));
    if (dir) return toShares(Number(readFileSync(join(dir, file), 'utf8').trim()));
  }
  throw new Error(`no cpu.shares or cpu.weight in ${dirs.join(', ')}`);
}

async function running(client: SbxClient): Promise<string> {
  const res = await client.submit({ image: e2e.stack.images.busybox, command: ['sleep', '60'], limits: { timeoutMs: 90_000 } });
  assert.equal(res.status, 202, JSON.stringify(res.body));
  const id = res.body.id;
  await waitUntil(async () => (await client.get(id)).body.status === 'running', 20_000, `${id} running`);
  await waitUntil(async () => worker.log().includes(id) && worker.log().split('\n').some((l) => l.includes('"job started"') && l.includes(id)), 5_000, `${id}'s start in the log`);
  return id;
}

test('a tenant\'s jobs share one weight while another tenant runs beside them; alone they keep the default', { timeout: 120_000 }, async () => {
  const ours = [await running(a), await running(a), await running(a)];
  assert.deepEqual(ours.map(sharesOf), [1024, 1024, 1024], 'one tenant alone: the default');
  const theirs = await running(b);
  assert.equal(sharesOf(theirs), 1024);
  assert.deepEqual(ours.map(sharesOf), [341, 341, 341], 'A\'s three weigh what B\'s one does');
  assert.equal((await b.request('DELETE', `/v1/jobs/${theirs}`)).status, 202);
  await b.waitFinished(theirs);
  await waitUntil(async () => ours.every((id) => sharesOf(id) === 1024), 10_000, 'A\'s jobs back at the default once B\'s has ended');
  for (const id of ours) assert.equal((await a.request('DELETE', `/v1/jobs/${id}`)).status, 202);
  for (const id of ours) await a.waitFinished(id);
});
