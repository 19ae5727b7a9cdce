/**
 * P49 on a real stack: one tenant's jobs cannot fill the Redis every tenant shares. Each tenant's
 * jobs may store quota.storedBytesPerHour bytes per clock hour, job records and output
 * (SBX_TENANT_STORED_BYTES_PER_HOUR); past it the worker drops the rest of their output and says so
 * (outputTruncated), and the API refuses its new jobs until the hour ends (429 rate_limited).
 * Another tenant is untouched.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { RedisKeys } from '../../core/src/redis-keys.ts';
import { connectionNames, monitorRedis } from '../harness/redis-monitor.ts';
import { SbxClient } from '../harness/api-client.ts';
import { startStack, type Stack } from '../harness/stack.ts';

const KEY_A = 'key-budget-alpha-aaaaaaaaaaaaaaaa';
const KEY_B = 'key-budget-beta-bbbbbbbbbbbbbbbbb';
const KEY_C = 'key-budget-gamma-dddddddddddddddd';
const KEY_D = 'key-budget-delta-eeeeeeeeeeeeeeee';
const KEY_E = 'key-budget-epsilon-ffffffffffffff';
const KEY_ADMIN = 'key-budget-admin-cccccccccccccccc';
const KEY_Z = 'key-budget-zeta-zzzzzzzzzzzzzzzzz';
const MiB = 2 ** 20;
const BUDGET = 1 * MiB;
const PRINTED = 3_000_000;

const keyDir = mkdtempSync(join(tmpdir(), 'sbx-receipt-key-'));
const receiptKeyFile = join(keyDir, 'receipt.pem');
writeFileSync(receiptKeyFile, generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });

let stack: Stack;
let a: SbxClient;
let b: SbxClient;

before(async () => {
  const keys = JSON.stringify([
    { key: KEY_A, tenant: 'alpha', quota: { storedBytesPerHour: BUDGET } },
    { key: KEY_B, tenant: 'beta' },
    { key: KEY_C, tenant: 'gamma', quota: { storedBytesPerHour: BUDGET } },
    { key: KEY_D, tenant: 'delta', quota: { storedBytesPerHour: 64 * MiB } },
    { key: KEY_E, tenant: 'epsilon', quota: { storedBytesPerHour: BUDGET } },
    { key: KEY_ADMIN, tenant: 'ops', role: 'admin' },
    { key: KEY_Z, tenant: 'zeta' },
  ]);
  // Receipts on (each job that ran carries one, stored twice: record and exit event), so they are counted too.
  stack = await startStack({ adminKey: KEY_ADMIN, env: { SBX_API_KEYS: keys, SBX_RECEIPT_KEY_FILE: receiptKeyFile } });
  a = new SbxClient(stack.apiUrl, KEY_A);
  b = new SbxClient(stack.apiUrl, KEY_B);
});
after(async () => {
  await stack?.stop();
  rmSync(keyDir, { recursive: true, force: true });
});

const printing = (bytes: number) => ({ image: stack.images.busybox, command: ['sh', '-c', `head -c ${bytes} /dev/zero | tr '\\0' a`], limits: { outputBytes: 4 * MiB } });

test('past its storage budget for the hour, a tenant\'s jobs keep no more output (outputTruncated) and its new jobs are refused (429); another tenant\'s are whole', async () => {
  // The budget counts per clock hour: not across an hour's end.
  const msLeft = 3_600_000 - (Date.now() % 3_600_000);
  if (msLeft < 30_000) await new Promise((r) => setTimeout(r, msLeft + 100));
  // Admitted while the budget has room, it prints once the first job has used it up.
  const late = a.submit({ image: stack.images.busybox, command: ['sh', '-c', 'sleep 2; echo hi'] }, { wait: true });
  const first = await a.submit(printing(PRINTED), { wait: true });
  assert.equal(first.body.status, 'succeeded', JSON.stringify(first.body.error));
  const kept = first.body.output!.stdout.length;
  process.stdout.write(`# alpha's first job printed ${PRINTED} bytes; ${kept} were kept (budget ${BUDGET})\n`);
  // The budget is never overdrawn: what is kept is what was left of it (its records took a little).
  assert.ok(kept >= BUDGET / 2 && kept <= BUDGET, `kept ${kept} of ${PRINTED}`);
  assert.equal(first.body.outputTruncated, true);

  // The budget is spent: the job running meanwhile keeps none of its output.
  const second = await late;
  assert.equal(second.body.status, 'succeeded');
  assert.equal(second.body.output!.stdout, '');
  assert.equal(second.body.outputTruncated, true);

  // What Redis counted for alpha this hour.
  const redis = new Redis(stack.env.SBX_REDIS_URL!);
  try {
    const used = Number(await redis.get(new RedisKeys(stack.env.SBX_REDIS_PREFIX ?? 'sbx').tenantStored('alpha', Math.floor(Date.now() / 3_600_000))));
    assert.equal(used, BUDGET, 'alpha\'s count for the hour is its whole budget');
  } finally {
    redis.disconnect();
  }

  // And until the hour ends, alpha's new jobs are refused, saying why and for how long.
  const refused = await a.submit({ image: stack.images.busybox, command: ['true'] });
  assert.equal(refused.status, 429);
  assert.match(JSON.stringify(refused.body), /stored 1048576 bytes \(job records and output\) this hour, its quota \(storedBytesPerHour\)/);
  const retryAfter = Number(refused.headers.get('retry-after'));
  assert.ok(retryAfter >= 1 && retryAfter <= 3600, `Retry-After ${retryAfter}`);

  const other = await b.submit(printing(PRINTED), { wait: true });
  assert.equal(other.body.status, 'succeeded');
  assert.equal(other.body.output!.stdout.length, PRINTED, 'beta keeps all of its output');
  assert.equal(other.body.outputTruncated, false);
});

test('job records count too: a tenant submitting jobs with long commands is refused once they add up to its budget', async () => {
  const msLeft = 3_600_000 - (Date.now() % 3_600_000);
  if (msLeft < 30_000) await new Promise((r) => setTimeout(r, msLeft + 100));
  const c = new SbxClient(stack.apiUrl, KEY_C);
  const arg = 'x'.repeat(100 * 1024);
  const statuses: number[] = [];
  for (let i = 0; i < 12; i++) {
    // Never runs (a worker fails it at once: no such image), but its record is stored for a day.
    statuses.push((await c.submit({ image: `${stack.registry.host}/none/such:latest`, command: [arg, arg, String(i)] })).status);
  }
  // Each record holds about 2 x 200 KiB: the 1 MiB budget takes the first two or three.
  const admitted = statuses.filter((s) => s === 202).length;
  assert.ok(admitted >= 2 && admitted <= 3, `statuses ${statuses.join(' ')}`);
  assert.ok(statuses.slice(admitted).every((s) => s === 429), `statuses ${statuses.join(' ')}`);
});

test('what a job is counted is at least what its record takes in Redis, its signed receipt included: 20 jobs of `true`', async () => {
  const msLeft = 3_600_000 - (Date.now() % 3_600_000);
  if (msLeft < 30_000) await new Promise((r) => setTimeout(r, msLeft + 100));
  const d = new SbxClient(stack.apiUrl, KEY_D);
  const ids: string[] = [];
  for (let i = 0; i < 20; i++) {
    const res = await d.submit({ image: stack.images.busybox, command: ['true'] }, { wait: true });
    assert.equal(res.body.status, 'succeeded');
    assert.ok(res.body.receipt, 'a receipt');
    ids.push(res.body.id);
  }
  const redis = new Redis(stack.env.SBX_REDIS_URL!);
  try {
    const keys = new RedisKeys(stack.env.SBX_REDIS_PREFIX ?? 'sbx');
    const counted = Number(await redis.get(keys.tenantStored('delta', Math.floor(Date.now() / 3_600_000))));
    let held = 0;
    for (const id of ids) for (const key of [keys.jobState(id), keys.jobEvents(id)]) held += Number(await redis.memory('USAGE', key));
    process.stdout.write(`# 20 jobs of true: counted ${counted} bytes, their records take ${held} in Redis\n`);
    assert.ok(counted >= 0.9 * held, `counted ${counted} bytes for records taking ${held}`);
  } finally {
    redis.disconnect();
  }
});

test('output is counted as Redis stores it: 3,000,000 NUL bytes (six bytes each as JSON) keep the Redis they fill within the budget', async () => {
  const msLeft = 3_600_000 - (Date.now() % 3_600_000);
  if (msLeft < 30_000) await new Promise((r) => setTimeout(r, msLeft + 100));
  const e = new SbxClient(stack.apiUrl, KEY_E);
  const res = await e.submit({ image: stack.images.busybox, command: ['head', '-c', String(PRINTED), '/dev/zero'], limits: { outputBytes: 4 * MiB } }, { wait: true });
  assert.equal(res.body.status, 'succeeded', JSON.stringify(res.body.error));
  assert.equal(res.body.outputTruncated, true);
  const kept = res.body.output!.stdout.length;
  const redis = new Redis(stack.env.SBX_REDIS_URL!);
  try {
    const held = Number(await redis.memory('USAGE', new RedisKeys(stack.env.SBX_REDIS_PREFIX ?? 'sbx').jobEvents(res.body.id), 'SAMPLES', 0));
    process.stdout.write(`# epsilon's job printed ${PRINTED} NUL bytes; ${kept} were kept, its events take ${held} bytes of Redis (budget ${BUDGET})\n`);
    // Within the budget, give or take the allocator's size classes (a 384 KiB event takes a 448 KiB block).
    assert.ok(held <= 1.25 * BUDGET, `its events take ${held} bytes of Redis for a budget of ${BUDGET}`);
    assert.ok(kept >= BUDGET / 8, `kept ${kept}`);
  } finally {
    redis.disconnect();
  }
});

test("a tenant's job appends its first output beside its storage charge once an earlier job of the tenant here saw room (no round trip before it); its first job charges first", async () => {
  // Both jobs and the charges read back in one clock hour: the room the first job saw is for its hour
  // only (the next one's would charge first), and the charge key read below is the hour's.
  const msLeft = 3_600_000 - (Date.now() % 3_600_000);
  if (msLeft < 30_000) await new Promise((r) => setTimeout(r, msLeft + 100));
  const z = new SbxClient(stack.apiUrl, KEY_Z);
  const url = stack.env.SBX_REDIS_URL!;
  const keys = new RedisKeys(stack.env.SBX_REDIS_PREFIX ?? 'sbx');
  /** The worker's main connection's charges of zeta's budget and appends of the job's stdout, in the order Redis got them. */
  const tracedJob = async (text: string): Promise<string[]> => {
    const names = await connectionNames(url);
    const seen: Array<{ client: string; args: string[] }> = [];
    const monitor = await monitorRedis(url, ({ source, args }) => seen.push({ client: names.get(source) ?? source, args }));
    try {
      const res = await z.submit({ image: stack.images.busybox, command: ['echo', text] }, { wait: true });
      assert.equal(res.body.status, 'succeeded', JSON.stringify(res.body.error));
      assert.equal(res.body.output!.stdout, `${text}\n`);
      await new Promise((r) => setTimeout(r, 300)); // the receipt's charge, after the answer
      const hour = Math.floor(Date.now() / 3_600_000);
      return seen
        .filter((c) => c.client === 'sbx-worker')
        .map((c) => (c.args.includes(keys.tenantStored('zeta', hour)) ? 'charge' : c.args.includes(keys.jobEvents(res.body.id)) && c.args.includes('stdout') ? 'append' : ''))
        .filter(Boolean);
    } finally {
      await monitor.stop();
    }
  };
  const first = await tracedJob('first');
  assert.deepEqual(first.slice(0, 2), ['charge', 'append'], `zeta's first job: nothing known of its budget here, so the charge goes first (${first.join(', ')})`);
  const next = await tracedJob('next');
  assert.deepEqual(next.slice(0, 2), ['append', 'charge'], `zeta's next job: the append goes out with its charge (${next.join(', ')})`);
});
