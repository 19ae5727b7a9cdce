/**
 * A slow registry holds no slot and no download past a cancel (issue 9, item 5), on the real stack
 * with one run slot: while a job is stuck pulling from a registry that trickles one byte every
 * 200 ms, another job runs to completion; DELETE of the stuck job answers `cancelled` and the
 * registry sees the download's connection close.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { busyboxImage } from '../fixtures/build-images.ts';
import { startFakeRegistry, type FakeRegistry } from '../fixtures/fake-registry.ts';
import type { BuiltImage } from '../fixtures/oci-builder.ts';
import { SbxClient } from '../harness/api-client.ts';
import { waitUntil } from '../harness/redis.ts';
import { startStack, startWorkerWithMetrics, type Stack } from '../harness/stack.ts';

let stack: Stack;
let api: SbxClient;
let fake: FakeRegistry;
let image: BuiltImage;
let metricsUrl: string;
let stuckId: string;

/** The trickled layer download, once the worker asked for it. */
const download: { started: Promise<void>; closed: Promise<number>; socketClosed: boolean } = {
  started: Promise.resolve(),
  closed: Promise.resolve(0),
  socketClosed: false,
};

before(async () => {
  // The same layer as the stack's busybox: the healthy registry's pull of it must not wait on the
  // trickling one's download.
  image = await busyboxImage();
  fake = await startFakeRegistry();
  fake.add('slow/busybox', 'latest', image);
  const layer = image.layers[0]!;
  let markStarted: () => void = () => {};
  let markClosed: (at: number) => void = () => {};
  download.started = new Promise((r) => (markStarted = r));
  download.closed = new Promise((r) => (markClosed = r));
  fake.hook = (req, res) => {
    if (req.url !== `/v2/slow/busybox/blobs/${layer.digest}`) return false;
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': layer.bytes.length });
    let sent = 0;
    const timer = setInterval(() => res.write(layer.bytes.subarray(sent, ++sent)), 200);
    req.socket.once('close', () => {
      clearInterval(timer);
      download.socketClosed = true;
      markClosed(performance.now());
    });
    markStarted();
    return true;
  };
  stack = await startStack({ workers: 0 });
  // The stall window is longer than this test: the job stays stuck pulling until it is cancelled.
  ({ metricsUrl } = await startWorkerWithMetrics(stack, {
    SBX_WORKER_SLOTS: '1',
    SBX_PULL_STALL_MS: '120000',
    SBX_EGRESS_ALLOW: `${stack.registry.host},${fake.host}`,
  }));
  api = new SbxClient(stack.apiUrl);
});

after(async () => {
  await stack?.stop();
  await fake?.stop();
});

async function slotsBusy(): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  return Number(/sbx_worker_slots_busy\{[^}]*\} (\d+)/.exec(text)?.[1] ?? NaN);
}

test('while a job is stuck pulling from a trickling registry, another job runs to completion on the one slot', { timeout: 90_000 }, async () => {
  const stuck = await api.submit({ image: `${fake.host}/slow/busybox:latest`, command: ['true'] });
  assert.equal(stuck.status, 202, JSON.stringify(stuck.body));
  stuckId = stuck.body.id;
  await download.started;
  assert.equal((await api.get(stuckId)).body.status, 'pulling');

  const ready = await api.submit({ image: stack.images.busybox, command: ['sh', '-c', 'echo ran beside a stuck pull'] });
  assert.equal(ready.status, 202, JSON.stringify(ready.body));
  const finished = await waitUntil(async () => ['succeeded', 'failed', 'error'].includes((await api.get(ready.body.id)).body.status), 20_000, 'the second job').then(
    () => true,
    () => false,
  );
  const doc = (await api.get(ready.body.id, true)).body;
  assert.ok(finished, `the second job was still ${doc.status} 20 s later: the job pulling from the trickling registry held the only slot`);
  assert.equal(doc.status, 'succeeded', JSON.stringify(doc));
  console.log(`the second job: ${JSON.stringify(doc.timings)}`);
  assert.equal((await api.get(stuckId)).body.status, 'pulling', 'the first job is still pulling');
  assert.equal(await slotsBusy(), 0, 'a pulling job holds no slot');
  assert.equal(download.socketClosed, false);
});

test('DELETE of the pulling job answers cancelled at once and the registry sees the download closed', { timeout: 30_000 }, async () => {
  assert.ok(stuckId, 'the previous test submitted the stuck job');
  const sent = performance.now();
  const answer = await api.request<{ status: string }>('DELETE', `/v1/jobs/${stuckId}`);
  const answeredMs = performance.now() - sent;
  assert.equal(answer.status, 202);
  assert.equal(answer.body.status, 'cancelled', JSON.stringify(answer.body));
  let timer: NodeJS.Timeout | undefined;
  const closedAt = await Promise.race([download.closed, new Promise<null>((r) => (timer = setTimeout(() => r(null), 3000)))]);
  clearTimeout(timer);
  assert.ok(closedAt !== null, 'the registry still had the download open 3 s after DELETE answered cancelled');
  console.log(`DELETE answered cancelled in ${Math.round(answeredMs)} ms; the registry saw the connection close ${Math.round(closedAt - sent)} ms after the request`);
  assert.equal((await api.get(stuckId)).body.status, 'cancelled');
});
