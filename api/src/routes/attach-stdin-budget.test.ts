/**
 * P49: what a tenant's attach sockets send to its jobs' stdin passes through Redis, so it is charged
 * to the tenant's storage budget (storedBytesPerHour) as records and output are. Before, it was not:
 * with a 1 MiB budget, ten jobs that never read their stdin made Redis hold 26 MB of it and the
 * tenant went on submitting (auditor). Past the budget the input is not passed on and the client is
 * told (an `error` message, rate_limited). A real API process; no worker (the jobs stay queued, and
 * stdin waits in Redis for them).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WebSocket } from 'undici';
import type { JobDocument } from '../../../core/src/job-spec.ts';
import { RedisKeys } from '../../../core/src/redis-keys.ts';
import { useApiProcess } from '../../../test/harness/api-process.ts';
import { waitUntil } from '../../../test/harness/redis.ts';

const KEY = 'key-tenant-alpha-aaaaaaaaaaaa';
const BUDGET = 256 * 1024;
const keys = new RedisKeys();
const stack = useApiProcess({ SBX_API_KEYS: `${KEY}:alpha`, SBX_TENANT_STORED_BYTES_PER_HOUR: String(BUDGET) });

test('stdin past the tenant\'s storage budget is not passed on: the client gets rate_limited, Redis holds no more than the budget', async () => {
  const res = await fetch(`${stack.api.url}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` }, body: JSON.stringify({ image: '127.0.0.1:5000/test/busybox:latest', command: ['sleep', '60'], openStdin: true }) });
  assert.equal(res.status, 202, await res.clone().text());
  const id = ((await res.json()) as JobDocument).id;
  const ws = new WebSocket(`${stack.api.url.replace(/^http/, 'ws')}/v1/jobs/${id}/attach`, { protocols: ['sbx.v1'], headers: { authorization: `Bearer ${KEY}` } });
  const errors: Array<{ code: string; message: string }> = [];
  ws.addEventListener('message', (e) => {
    if (typeof e.data === 'string') {
      const m = JSON.parse(e.data) as { type: string; code: string; message: string };
      if (m.type === 'error') errors.push(m);
    }
  });
  await new Promise((resolve, reject) => {
    ws.addEventListener('open', resolve, { once: true });
    ws.addEventListener('error', reject, { once: true });
  });
  for (let i = 0; i < 16; i++) { // 1 MiB in all, four times the budget
    const message = Buffer.alloc(64 * 1024 + 1, 0x61);
    message[0] = 0; // the stdin channel
    ws.send(message);
  }
  await waitUntil(async () => errors.length > 0, 15_000, 'the client to be told');
  ws.close();
  assert.equal(errors[0]!.code, 'rate_limited');
  assert.match(errors[0]!.message, /tenant alpha's jobs have stored 262144 bytes \(job records, output and stdin\) this hour, its quota \(storedBytesPerHour\): this input was not passed on/);
  const rows = await stack.redis.client().xrangeBuffer(keys.jobStdin(id), '-', '+');
  const held = rows.reduce((n, [, f]) => n + (f[3]?.length ?? 0), 0);
  assert.ok(held > 0 && held <= BUDGET, `the job's stdin in Redis: ${held} bytes`);
});
