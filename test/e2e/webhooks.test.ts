/**
 * Webhooks end to end (issue 11 item 4): jobs run by a real worker POST their finished document to
 * a real receiver (a node http server, allow-listed for the workers by SBX_EGRESS_ALLOW): the
 * signature verifies with the README's recipe, a 503 is retried and then delivered, a 400 is never
 * retried, and an https callback to a private address the allow-list does not name ends as a
 * recorded egress_refused attempt without any connection to it. Every attempt is on the job.
 */
import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { JobDocument } from '../../core/src/job-spec.ts';
import { SbxClient } from '../harness/api-client.ts';
import { waitUntil } from '../harness/redis.ts';
import { startStack, type Stack } from '../harness/stack.ts';
import { startWebhookReceiver, type WebhookReceiver } from '../harness/webhook-receiver.ts';

const SECRET = 'whsec-e2e-0123456789abcdefghijklmnop';
let stack: Stack;
let api: SbxClient;
let receiver: WebhookReceiver;
let privateReceiver: WebhookReceiver;

before(async () => {
  receiver = await startWebhookReceiver({ '/ok': [200], '/flaky': [503, 200], '/bad': [400] });
  privateReceiver = await startWebhookReceiver();
  stack = await startStack({
    egressAllow: [`127.0.0.1:${receiver.port}`],
    env: { SBX_WEBHOOK_SECRETS: `*:${SECRET}`, SBX_WEBHOOK_BACKOFF_MS: '100', SBX_WEBHOOK_BACKOFF_MAX_MS: '400' },
  });
  api = new SbxClient(stack.apiUrl);
});
after(async () => {
  await stack?.stop();
  await receiver?.stop();
  await privateReceiver?.stop();
});

/** The receiver's check, as the README gives it: HMAC-SHA256 over `${t}.${rawBody}`, hex, constant-time compare. */
function readmeVerify(secret: string, header: string, rawBody: string): boolean {
  const fields = Object.fromEntries(header.split(',').map((kv) => kv.split('=') as [string, string]));
  if (Math.abs(Date.now() / 1000 - Number(fields.t)) > 300) return false;
  const expected = createHmac('sha256', secret).update(`${fields.t}.${rawBody}`).digest();
  const given = Buffer.from(fields.v1 ?? '', 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

async function runWithCallback(command: string[], callbackUrl: string): Promise<JobDocument> {
  const res = await api.submit({ image: stack.images.busybox, command, callbackUrl }, { wait: true });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body;
}

/** The job once its webhook is settled: delivered, or no further attempt planned. */
async function settled(id: string): Promise<JobDocument> {
  let doc: JobDocument | null = null;
  try {
    await waitUntil(async () => {
      doc = (await api.get(id)).body;
      const cb = doc.callback;
      return !!cb && cb.attempts.length > 0 && (cb.delivered || cb.nextAttemptAt === null);
    }, 20_000, `the webhook of ${id} to settle`);
  } catch (e) {
    throw new Error(`${(e as Error).message}; its last attempts: ${JSON.stringify((doc as JobDocument | null)?.callback?.attempts.slice(-2))}`);
  }
  return doc!;
}

describe('webhooks', () => {
  test('a finished job is POSTed, signed: the signature verifies; a tampered body does not', async () => {
    const job = await runWithCallback(['sh', '-c', 'echo hi; exit 3'], receiver.url('/ok'));
    assert.equal(job.status, 'failed');
    const doc = await settled(job.id);
    assert.equal(doc.callback!.delivered, true, JSON.stringify(doc.callback));
    assert.deepEqual(doc.callback!.attempts.map((a) => a.status), [200]);
    const [hit, ...more] = receiver.on('/ok');
    assert.equal(more.length, 0);
    assert.equal(hit!.headers['sbx-webhook-id'], job.id);
    assert.equal(hit!.headers['sbx-event'], 'job.finished');
    assert.equal(hit!.headers['content-type'], 'application/json');
    const signature = String(hit!.headers['sbx-signature']);
    assert.match(signature, /^t=\d+,v1=[0-9a-f]{64}$/);
    assert.ok(readmeVerify(SECRET, signature, hit!.body), 'the signature verifies with the secret');
    assert.ok(!readmeVerify(SECRET, signature, hit!.body.replace('"failed"', '"succeeded"')), 'a tampered body does not verify');
    assert.ok(!readmeVerify('another-secret-of-24-chars-x', signature, hit!.body), 'another secret does not verify');
    const body = JSON.parse(hit!.body) as JobDocument;
    assert.equal(body.id, job.id);
    assert.equal(body.status, 'failed');
    assert.equal(body.exitCode, 3);
    assert.equal(body.callback, undefined, 'the body is the job document without its delivery state');
  });

  test('a 503 is retried with backoff, then delivered; every attempt is on the job', async () => {
    const job = await runWithCallback(['true'], receiver.url('/flaky'));
    const doc = await settled(job.id);
    assert.equal(doc.callback!.delivered, true, JSON.stringify(doc.callback));
    assert.deepEqual(doc.callback!.attempts.map((a) => [a.status, a.error?.code ?? null]), [[503, 'http_error'], [200, null]]);
    const hits = receiver.on('/flaky');
    assert.equal(hits.length, 2);
    assert.ok(hits.every((h) => h.headers['sbx-webhook-id'] === job.id && readmeVerify(SECRET, String(h.headers['sbx-signature']), h.body)));
    assert.equal(hits[0]!.body, hits[1]!.body, 'the same document each time');
  });

  test('a 400 is not retried', async () => {
    const job = await runWithCallback(['true'], receiver.url('/bad'));
    const doc = await settled(job.id);
    assert.equal(doc.callback!.delivered, false);
    assert.equal(doc.callback!.nextAttemptAt, null);
    assert.deepEqual(doc.callback!.attempts.map((a) => a.status), [400]);
    // Retries here would come after 100-400 ms: well within this wait.
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(receiver.on('/bad').length, 1, 'exactly one POST');
    assert.equal((await api.get(job.id)).body.callback!.attempts.length, 1);
  });

  test('a private address the allow-list does not name: egress_refused on the job, no connection made', async () => {
    const before = privateReceiver.connections();
    const plain = await api.submit({ image: stack.images.busybox, command: ['true'], callbackUrl: privateReceiver.url('/') });
    assert.equal(plain.status, 400, 'http:// to a host not allow-listed is refused at submission');
    assert.match(JSON.stringify(plain.body), /callbackUrl/);
    const job = await runWithCallback(['true'], `https://127.0.0.1:${privateReceiver.port}/hook`);
    const doc = await settled(job.id);
    assert.equal(doc.callback!.delivered, false);
    assert.equal(doc.callback!.nextAttemptAt, null, 'a refusal is not retried');
    assert.deepEqual(doc.callback!.attempts.map((a) => [a.status, a.error?.code]), [[null, 'egress_refused']]);
    const viaName = await runWithCallback(['true'], `https://localhost:${privateReceiver.port}/hook`);
    assert.deepEqual((await settled(viaName.id)).callback!.attempts.map((a) => a.error?.code), ['egress_refused']);
    assert.equal(privateReceiver.connections() - before, 0, 'the private receiver saw no connection');
    assert.equal(privateReceiver.received.length, 0);
  });
});
