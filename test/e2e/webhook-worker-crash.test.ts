/**
 * A webhook is delivered at least once (README, "Webhooks"), also when the worker delivering it
 * dies mid-attempt, twice: each time the delivery's queue entry goes back to the queue once its lock
 * lapses, and a worker started after delivers it. Before, BullMQ gave up an entry that had stalled
 * more than once ("job stalled more than allowable limit") and the webhook was never sent.
 */
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import type { JobDocument } from '../../core/src/job-spec.ts';
import { SbxClient } from '../harness/api-client.ts';
import { waitUntil } from '../harness/redis.ts';
import { startStack, type Stack } from '../harness/stack.ts';

const SECRET = 'whsec-crash-0123456789abcdefghijklmn';
const held: ServerResponse[] = [];
let posts = 0;
let stack: Stack;
// The first two deliveries never get an answer (their workers are killed meanwhile); the third gets 200.
const receiver = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    posts++;
    if (posts <= 2) held.push(res);
    else res.writeHead(200).end('ok');
  });
});

before(async () => {
  await new Promise<void>((done) => receiver.listen(0, '127.0.0.1', done));
  const { port } = receiver.address() as AddressInfo;
  // A delivery attempt waits up to a minute for its answer: the killed workers' attempts are never timed out.
  stack = await startStack({ egressAllow: [`127.0.0.1:${port}`], env: { SBX_WEBHOOK_SECRETS: `*:${SECRET}`, SBX_WEBHOOK_TIMEOUT_MS: '60000' } });
});
after(async () => {
  for (const res of held) res.destroy();
  receiver.closeAllConnections();
  receiver.close();
  await stack?.stop();
});

test('a webhook whose delivering worker is killed mid-attempt, twice, is delivered by the next worker', { timeout: 400_000 }, async (t) => {
  const { port } = receiver.address() as AddressInfo;
  const api = new SbxClient(stack.apiUrl);
  const res = await api.submit({ image: stack.images.busybox, command: ['true'], callbackUrl: `http://127.0.0.1:${port}/hook` }, { wait: true });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const id = res.body.id;
  for (let kill = 1; kill <= 2; kill++) {
    await waitUntil(async () => posts >= kill, 100_000, `delivery attempt ${kill} to reach the receiver`);
    const started = Date.now();
    await stack.workers.at(-1)!.kill('SIGKILL'); // mid-attempt: its answer never comes
    await stack.startWorker();
    t.diagnostic(`attempt ${kill} reached the receiver; its worker killed, another started in ${Date.now() - started} ms`);
  }
  let doc: JobDocument | null = null;
  await waitUntil(async () => {
    doc = (await api.get(id)).body;
    return doc.callback?.delivered === true;
  }, 100_000, 'the webhook to be delivered by the third worker').catch(async (e: Error) => {
    throw new Error(`${e.message}; the receiver saw ${posts} POSTs; last worker's log:\n${stack.workers.at(-1)!.log().slice(-2000)}`);
  });
  assert.equal(posts, 3, 'delivered on the third POST');
  assert.equal(doc!.callback!.attempts.length, 1, 'the killed workers\' attempts were never recorded; the one that was, answered 200');
});
