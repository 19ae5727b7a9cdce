/**
 * sbx runs as a Redis user with the least it needs (infra/redis/sbx-user.acl: its own keys and
 * channels, no admin or dangerous command), so a leaked sbx credential (an API host's environment)
 * or a Redis shared with other applications gives no more than sbx's own data: not the server
 * (CONFIG, SHUTDOWN, MODULE LOAD, REPLICAOF, DEBUG), not the other applications' keys, channels or
 * scripts (FLUSHALL, KEYS, SCRIPT/FUNCTION FLUSH), not the users (ACL). The whole job path works
 * under it, keyed tenants and their quotas included, and neither the API nor a worker logs a refusal.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { SbxClient } from '../harness/api-client.ts';
import { startStack, type Stack } from '../harness/stack.ts';
import type { RunningRedis } from '../harness/redis.ts';

const ACL_FILE = new URL('../../infra/redis/sbx-user.acl', import.meta.url);
/** The rules of the file's `user sbx on >PASSWORD <rules>` line. */
const RULES = /^user sbx on >\S+ (.+)$/m.exec(readFileSync(ACL_FILE, 'utf8'))![1]!;
const KEY = 'least-privilege-tenant-key-0123456789';
const ADMIN_KEY = 'least-privilege-admin-key-0123456789';

let stack: Stack;
let api: SbxClient;
before(async () => {
  const keys = JSON.stringify([{ key: KEY, tenant: 'alpha', quota: { storedBytesPerHour: 64 * 1024 * 1024 } }, { key: ADMIN_KEY, tenant: 'ops', role: 'admin' }]);
  stack = await startStack({ redisUser: RULES, adminKey: ADMIN_KEY, env: { SBX_API_KEYS: keys } });
  api = new SbxClient(stack.apiUrl, KEY);
});
after(async () => {
  await stack?.stop();
});

test('the job path works as the sbx user: wait, stream, cancel, list, the fleet and images; no refusal logged', async () => {
  const waited = await api.submit({ image: stack.images.busybox, command: ['sh', '-c', 'echo out; exit 3'] }, { wait: true });
  assert.equal(waited.status, 200, JSON.stringify(waited.body));
  assert.equal(waited.body.exitCode, 3);
  assert.equal(waited.body.output!.stdout, 'out\n');
  const streamed = await api.submit({ image: stack.images.busybox, command: ['sh', '-c', 'echo a; sleep 0.2; echo b'] });
  const events = await api.events(streamed.body.id);
  assert.equal(events.filter((e) => e.event === 'stdout').map((e) => JSON.parse(e.data).data).join(''), 'a\nb\n');
  const long = await api.submit({ image: stack.images.busybox, command: ['sh', '-c', 'echo go; sleep 30'] });
  await api.events(long.body.id, { until: (e) => e.event === 'stdout' });
  assert.equal((await api.request('DELETE', `/v1/jobs/${long.body.id}`)).status, 202);
  assert.equal((await api.waitFinished(long.body.id)).status, 'cancelled');
  assert.equal((await api.request<{ items: unknown[] }>('GET', '/v1/jobs?limit=10')).body.items.length, 3);
  const admin = new SbxClient(stack.apiUrl, ADMIN_KEY);
  assert.equal((await admin.request<{ items: unknown[] }>('GET', '/v1/workers')).body.items.length, 1);
  assert.equal((await api.request('GET', '/v1/images')).status, 200);
  for (const p of [stack.api, ...stack.workers]) assert.doesNotMatch(p.log(), /NOPERM|no permissions/, p.log().slice(-2000));
});

test('the same credentials reach nothing but sbx\'s own: every server, user and other-application command is refused', async () => {
  const admin = (stack.redis as RunningRedis).client();
  await admin.set('other-app:secret', 'theirs');
  const sbx = new Redis(stack.env.SBX_REDIS_URL!, { maxRetriesPerRequest: 0, lazyConnect: true });
  sbx.on('error', () => {});
  try {
    assert.equal(await sbx.call('ACL', 'WHOAMI'), 'sbx');
    const refused: Array<[string, ...string[]]> = [
      ['FLUSHALL'], ['FLUSHDB'], ['CONFIG', 'SET', 'maxmemory-policy', 'allkeys-lru'], ['CONFIG', 'GET', 'requirepass'], ['SHUTDOWN', 'NOSAVE'],
      ['MODULE', 'LOAD', '/tmp/x.so'], ['DEBUG', 'SLEEP', '0'], ['REPLICAOF', '127.0.0.1', '1'], ['KEYS', '*'], ['ACL', 'SETUSER', 'sbx', '+@all'],
      ['CLIENT', 'KILL', 'TYPE', 'normal'], ['CLIENT', 'LIST'], ['MONITOR'], ['SAVE'], ['BGSAVE'], ['SWAPDB', '0', '1'], ['SCRIPT', 'FLUSH'], ['FUNCTION', 'FLUSH'],
      ['GET', 'other-app:secret'], ['SET', 'other-app:secret', 'mine'], ['DEL', 'other-app:secret'], ['PUBLISH', 'other-app:events', 'x'],
      ['EVAL', "return redis.call('GET', 'other-app:secret')", '0'],
    ];
    const answered: string[] = [];
    for (const [command, ...args] of refused) {
      const reply = await sbx.call(command, ...args).then((r) => `answered ${JSON.stringify(r)}`, (e: Error) => e.message);
      if (!/NOPERM|no permissions|command not allowed|can't access/.test(reply)) answered.push(`${command} ${args.join(' ')}: ${reply}`);
    }
    assert.deepEqual(answered, [], 'commands the sbx user must not have');
    assert.equal(await admin.get('other-app:secret'), 'theirs');
  } finally {
    sbx.disconnect();
    admin.disconnect();
  }
});
