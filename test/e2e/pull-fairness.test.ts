/**
 * One tenant's slow pulls do not keep another tenant's jobs in the queue (P41). Tenant A names four
 * images on a registry that trickles (4 KiB/s: above the stall bound, so only the 10-minute pull
 * deadline would end them); the worker takes all four, and A's fourth pull waits for a permit
 * because the last one is kept for other tenants. Before, the worker's intake gate counted that
 * waiting pull as a pull in progress, stopped taking jobs at SBX_PULL_CONCURRENCY (4), and tenant B's
 * job on a cached image stayed `queued` (auditor: still queued after 45 s; with A's three pulls,
 * 259 ms).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { busyboxImage } from '../fixtures/build-images.ts';
import { startFakeRegistry, type FakeRegistry } from '../fixtures/fake-registry.ts';
import { buildLayer } from '../fixtures/oci-builder.ts';
import { SbxClient } from '../harness/api-client.ts';
import { waitUntil } from '../harness/redis.ts';
import { startStack, type Stack } from '../harness/stack.ts';

const KEY_A = 'key-tenant-alpha-aaaaaaaaaaaa';
const KEY_B = 'key-tenant-beta-bbbbbbbbbbbbb';
const KEY_ADMIN = 'key-admin-ops-cccccccccccccccc';
const PULLS = 4; // SBX_PULL_CONCURRENCY's default
let stack: Stack;
let fake: FakeRegistry;
let a: SbxClient;
let b: SbxClient;
const trickled = new Map<string, Buffer>();
const timers = new Set<NodeJS.Timeout>();

before(async () => {
  fake = await startFakeRegistry();
  for (let i = 1; i <= PULLS; i++) {
    const extra = await buildLayer([{ type: 'file', path: `blob${i}`, content: randomBytes(1 << 20) }]);
    trickled.set(extra.digest, extra.bytes);
    fake.add(`slow${i}/img`, 'latest', await busyboxImage({ extraLayers: [extra] }));
  }
  fake.hook = (req, res) => {
    const digest = req.url?.split('/blobs/')[1];
    const bytes = digest ? trickled.get(digest) : undefined;
    if (!bytes) return false;
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bytes.length });
    let at = 0;
    const timer = setInterval(() => {
      res.write(bytes.subarray(at, at + 4096));
      at += 4096;
    }, 1000);
    timers.add(timer);
    req.socket.once('close', () => (clearInterval(timer), timers.delete(timer)));
    return true;
  };
  stack = await startStack({ workers: 0, adminKey: KEY_ADMIN, egressAllow: [fake.host], env: { SBX_API_KEYS: `${KEY_A}:alpha,${KEY_B}:beta,${KEY_ADMIN}:ops:admin` } });
  await stack.startWorker({ SBX_WORKER_SLOTS: '2' });
  a = new SbxClient(stack.apiUrl, KEY_A);
  b = new SbxClient(stack.apiUrl, KEY_B);
});
after(async () => {
  for (const t of timers) clearInterval(t);
  await stack?.stop();
  await fake?.stop();
});

test('tenant A\'s four pulls from a trickling registry (one waiting for a permit) do not keep tenant B\'s job on a cached image in the queue', { timeout: 120_000 }, async () => {
  const warm = await b.submit({ image: stack.images.busybox, command: ['true'] }, { wait: true });
  assert.equal(warm.body.status, 'succeeded', JSON.stringify(warm.body));
  const ids: string[] = [];
  for (let i = 1; i <= PULLS; i++) ids.push((await a.submit({ image: `${fake.host}/slow${i}/img:latest`, command: ['true'] })).body.id);
  await waitUntil(async () => (await Promise.all(ids.map((id) => a.get(id)))).every((r) => r.body.status === 'pulling'), 30_000, 'the worker to take A\'s four jobs');
  const started = Date.now();
  const job = await b.submit({ image: stack.images.busybox, command: ['echo', 'b'] });
  let doc = job.body;
  await waitUntil(async () => {
    doc = (await b.get(job.body.id)).body;
    return doc.status === 'succeeded' || doc.status === 'failed' || doc.status === 'error';
  }, 30_000, 'B\'s job to end').catch(() => {});
  console.log(`B's job: ${doc.status} after ${Date.now() - started} ms; A's: ${(await Promise.all(ids.map((id) => a.get(id)))).map((r) => r.body.status).join(' ')}`);
  assert.equal(doc.status, 'succeeded', `B's job on a cached image: ${doc.status} (queuePosition ${String((doc as { queuePosition?: number }).queuePosition)})`);
  assert.equal(doc.exitCode, 0);
  for (const id of ids) assert.equal((await a.request<{ status: string }>('DELETE', `/v1/jobs/${id}`)).body.status, 'cancelled');
});
