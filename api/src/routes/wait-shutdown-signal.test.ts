/**
 * POST /v1/jobs?wait=true waits until the job ends, the client goes or the API stops (deps.shutdown,
 * a signal as old as the process). 300 waits must leave nothing on that signal: AbortSignal.any()
 * left a WeakRef per waited submit on it for good on Node 20 (client/src/linked-signal.ts; the leak
 * soak counted +2,143 WeakRefs on the API's heap over 3,000 jobs).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { useTestApp } from '../../../test/harness/api-app.ts';
import { signalHolds } from '../../../test/harness/signal-holds.ts';

const submit = (app: ReturnType<typeof useTestApp>['app']) =>
  app.request('/v1/jobs?wait=true', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image: 'busybox', command: ['true'] }) });

describe('with a wait cap of 20 ms (no worker: every wait ends at the cap)', () => {
  const t = useTestApp({ SBX_WAIT_CAP_MS: '20', SBX_TENANT_SUBMITS_PER_SECOND: '0' });

  test('waited submits leave nothing on the API\'s shutdown signal', async () => {
    const stopping = new AbortController();
    t.deps.shutdown = stopping.signal;
    const before = signalHolds(stopping.signal);
    for (let round = 0; round < 10; round++) {
      const answers = await Promise.all(Array.from({ length: 30 }, () => submit(t.app)));
      for (const a of answers) assert.equal(a.status, 202, await a.text()); // no worker: the wait cap answers
    }
    assert.equal(signalHolds(stopping.signal), before, 'held by the shutdown signal after 300 waited submits');
  });
});

describe('with the default wait cap (60 s)', () => {
  const t = useTestApp();

  test('the API stopping still ends a wait at once, with the job as it stands', async () => {
    const stopping = new AbortController();
    t.deps.shutdown = stopping.signal;
    const started = Date.now();
    const answer = submit(t.app);
    setTimeout(() => stopping.abort(), 50);
    const res = await answer;
    assert.equal(res.status, 202);
    assert.equal(((await res.json()) as { status: string }).status, 'queued');
    assert.ok(Date.now() - started < 5_000);
    assert.equal(signalHolds(stopping.signal), 0);
  });
});
