/**
 * With no API keys the API is open to anyone who reaches it, so it listens on loopback only: on
 * any other address it refuses to start (exit 2, one line) unless SBX_ALLOW_ANONYMOUS=true.
 * Real API processes on kernel-chosen ports (SBX_API_PORT=0).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { runApiUntilExit, startApiProcess } from '../../test/harness/api-process.ts';
import { startRedis, type RunningRedis } from '../../test/harness/redis.ts';

let redis: RunningRedis;
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis?.stop();
});

describe('anonymous API only on loopback', () => {
  for (const host of ['0.0.0.0', '::', '10.1.2.3']) {
    test(`no keys, SBX_API_HOST=${host}: exit 2 with one clear line`, async () => {
      const { code, output } = await runApiUntilExit({ SBX_REDIS_URL: redis.url, SBX_API_HOST: host });
      assert.equal(code, 2, `exit ${code}:\n${output}`);
      const lines = output.trim().split('\n');
      assert.equal(lines.length, 1, output);
      assert.match(lines[0]!, /SBX_API_HOST.*no SBX_API_KEYS.*SBX_ALLOW_ANONYMOUS=true/);
    });
  }

  test('no keys, SBX_API_HOST=0.0.0.0, SBX_ALLOW_ANONYMOUS=true: starts and answers', async () => {
    const api = await startApiProcess({ SBX_REDIS_URL: redis.url, SBX_API_HOST: '0.0.0.0', SBX_ALLOW_ANONYMOUS: 'true' });
    try {
      assert.equal((await fetch(`${api.url}/healthz`)).status, 200);
    } finally {
      await api.kill();
    }
  });

  test('keys configured, SBX_API_HOST=0.0.0.0: starts', async () => {
    const api = await startApiProcess({ SBX_REDIS_URL: redis.url, SBX_API_HOST: '0.0.0.0', SBX_API_KEYS: 'key-aaaaaaaaaaaaaaaaaaaa:alpha' });
    try {
      assert.equal((await fetch(`${api.url}/v1/jobs`)).status, 401);
    } finally {
      await api.kill();
    }
  });

  for (const host of ['127.0.0.1', '127.1.2.3', '::1', 'localhost']) {
    test(`no keys, SBX_API_HOST=${host}: starts`, async () => {
      const api = await startApiProcess({ SBX_REDIS_URL: redis.url, SBX_API_HOST: host });
      await api.kill();
    });
  }
});
