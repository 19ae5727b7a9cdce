/**
 * Redis is the only state API and workers share, so whoever can write to it (a neighbour on its
 * network, a local user on a host where it has no password) can queue a job: the worker takes what
 * it finds there. Such a job must not get more than an API of the deployment would give: its limits
 * are checked against the worker's own SBX_MAX_* (SECURITY.md P67). Played here by rewriting a queued
 * job's stored spec before any worker exists, as a Redis writer would.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { useStack } from '../harness/use-stack.ts';
import { RedisKeys } from '../../core/src/redis-keys.ts';

const MiB = 2 ** 20;
const e2e = useStack({ workers: 0, env: { SBX_MAX_MEMORY_BYTES: String(256 * MiB), SBX_MAX_DISK_BYTES: String(64 * MiB), SBX_MAX_TIMEOUT_MS: '60000' } });

test('a queued job whose stored limits are above the maxima no API of the deployment accepts ends invalid_request, unrun', { timeout: 90_000 }, async () => {
  // 100 MiB into the writable layer: past the maximum diskBytes (64 MiB), so only a forged limit lets it through.
  const script = 'dd if=/dev/zero of=/tmp/x bs=1048576 count=100 2>&1; ls -l /tmp/x';
  const asked = await e2e.api.submit({ image: e2e.stack.images.busybox, command: ['sh', '-c', script], limits: { diskBytes: 1024 * MiB } });
  assert.equal(asked.status, 400, 'the API refuses these limits');
  const forged = await e2e.api.submit({ image: e2e.stack.images.busybox, command: ['sh', '-c', script] });
  const honest = await e2e.api.submit({ image: e2e.stack.images.busybox, command: ['echo', 'ran'] });
  assert.equal(forged.status, 202, JSON.stringify(forged.body));
  assert.equal(honest.status, 202, JSON.stringify(honest.body));
  const redis = new Redis(e2e.stack.env.SBX_REDIS_URL!);
  try {
    const key = new RedisKeys().jobState(forged.body.id);
    const spec = JSON.parse((await redis.hget(key, 'spec'))!) as { limits: Record<string, unknown> };
    await redis.hset(key, 'spec', JSON.stringify({ ...spec, limits: { ...spec.limits, memoryBytes: 64 * 1024 * MiB, diskBytes: 1024 * MiB, timeoutMs: 2_000_000_000 } }));
  } finally {
    redis.disconnect();
  }
  await e2e.stack.startWorker();

  const refused = await e2e.api.waitFinished(forged.body.id);
  assert.equal(refused.status, 'error', `the forged job ran: ${JSON.stringify(refused.output)}`);
  assert.equal(refused.error?.code, 'invalid_request');
  assert.equal(refused.error!.message, `the job's limits.memoryBytes (${64 * 1024 * MiB}) is above this worker's maximum (${256 * MiB}, SBX_MAX_MEMORY_BYTES); nothing of it ran`);
  assert.equal(refused.timings.startedAt ?? null, null, 'its command never started');
  assert.equal(refused.imageDigest, null, 'its image was not pulled');
  const warned = e2e.stack.workers[0]!.log().split('\n').filter((l) => l.includes('no API of this deployment accepts')).map((l) => JSON.parse(l) as { level: number; jobId: string; over: Array<{ path: string }> });
  assert.deepEqual(warned.map((l) => [l.level, l.jobId, l.over.map((o) => o.path)]), [[40, forged.body.id, ['limits.memoryBytes', 'limits.timeoutMs', 'limits.diskBytes']]], 'the worker warns its operator');

  const ran = await e2e.api.waitFinished(honest.body.id);
  assert.equal(ran.status, 'succeeded', JSON.stringify(ran));
  assert.equal(ran.output?.stdout, 'ran\n');
});
