/**
 * A worker stopped (SIGTERM: a rolling deploy) while its job is still pulling hands the job back to
 * the queue at once, and another worker runs it: the command never started, as the README's "Lost
 * workers" promises for a crashed worker. Before, the job waited out the shutdown grace (10 s) and
 * ended error/worker_lost, "submit it again" (auditor), while a SIGKILL in the same phase queued it
 * again.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { SbxClient } from '../../client/src/index.ts';
import { busyboxImage } from '../fixtures/build-images.ts';
import { startFakeRegistry, type FakeRegistry } from '../fixtures/fake-registry.ts';
import { waitUntil } from '../harness/redis.ts';
import { startStack, type Stack } from '../harness/stack.ts';

let stack: Stack;
let client: SbxClient;
let fake: FakeRegistry;
let trickle = true;

before(async () => {
  const image = await busyboxImage();
  fake = await startFakeRegistry();
  fake.add('slow/busybox', 'latest', image);
  const layer = image.layers[0]!;
  // The layer one byte every 200 ms while `trickle`: the pull is in progress when the worker stops.
  fake.hook = (req, res) => {
    if (!trickle || req.url !== `/v2/slow/busybox/blobs/${layer.digest}`) return false;
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': layer.bytes.length });
    let sent = 0;
    const timer = setInterval(() => res.write(layer.bytes.subarray(sent, ++sent)), 200);
    req.socket.once('close', () => clearInterval(timer));
    return true;
  };
  stack = await startStack({ workers: 0, workerEnv: { SBX_PULL_STALL_MS: '120000' }, egressAllow: [fake.host] });
  client = new SbxClient(stack.apiUrl);
});
after(async () => {
  await stack?.stop();
  await fake?.stop();
});

test('SIGTERM while the job pulls: the worker hands it back at once, and another worker runs it', { timeout: 120_000 }, async () => {
  const first = await stack.startWorker();
  const job = await client.submit({ image: `${fake.host}/slow/busybox:latest`, command: ['echo', 'ran'] });
  await waitUntil(async () => (await client.get(job.id)).status === 'pulling', 20_000, 'the job to be pulling');
  const stopping = Date.now();
  await first.kill('SIGTERM');
  const stopMs = Date.now() - stopping;
  const after = await client.get(job.id);
  assert.equal(after.status, 'queued', `after the worker stopped (${stopMs} ms): ${JSON.stringify(after)}`);
  assert.equal(after.attempts, 2);
  trickle = false;
  const second = await stack.startWorker();
  const done = await client.wait(job.id, { timeoutMs: 60_000, output: true });
  assert.equal(done.status, 'succeeded', JSON.stringify(done));
  assert.equal(done.output?.stdout, 'ran\n');
  assert.deepEqual(done.history?.map((h) => [h.attempt, h.status, h.error?.code]), [[1, 'pulling', 'worker_lost']]);
  await second.kill('SIGTERM');
});
