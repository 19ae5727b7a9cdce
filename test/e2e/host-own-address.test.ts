/**
 * The worker host's own public address, named by a tenant as a registry or a webhook receiver. On a
 * cloud VM the worker's eth0 holds a public address, and whatever listens on 0.0.0.0 there (the
 * worker's metrics, a node exporter, the kubelet) answers on it: public by its class, the host's
 * own in fact. The service's own fetches refuse it unless SBX_EGRESS_ALLOW names it, as jobs'
 * egress does (P57). A whole stack runs in a network namespace of its own whose host has
 * 93.184.215.14 (test/fixtures/own-address-stack.ts): no connection reaches the listener there.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'node:test';

const fixture = join(import.meta.dirname, '..', 'fixtures', 'own-address-stack.ts');

test('a registry or webhook at the worker host\'s own public address is refused: egress_refused, no connection', { timeout: 180_000 }, async () => {
  const { stdout } = await promisify(execFile)('unshare', ['--net', '--', process.execPath, '--import', 'tsx', fixture], { maxBuffer: 1 << 20, timeout: 170_000 });
  const r = JSON.parse(stdout.trim().split('\n').at(-1)!) as {
    reachable: boolean;
    connections: number;
    pull: { status: number; body: { status?: string; error?: { code: string; message: string } } };
    hook: { status: string; nextAttemptAt: string | null; attempts: Array<{ status: number | null; code: string | null; message: string | null }> };
  };
  assert.equal(r.reachable, true, 'control: the address reaches the host\'s own listener');
  assert.equal(r.pull.status, 200, JSON.stringify(r.pull));
  assert.equal(r.pull.body.status, 'error', JSON.stringify(r.pull));
  assert.equal(r.pull.body.error?.code, 'egress_refused', JSON.stringify(r.pull));
  assert.match(r.pull.body.error!.message, /one of this host's own/);
  assert.equal(r.hook.status, 'succeeded');
  assert.deepEqual(r.hook.attempts.map((a) => [a.status, a.code]), [[null, 'egress_refused']], JSON.stringify(r.hook));
  assert.equal(r.hook.nextAttemptAt, null, 'a refusal is not retried');
  assert.equal(r.connections, 0, 'no connection from the service reached the host\'s own listener');
});
