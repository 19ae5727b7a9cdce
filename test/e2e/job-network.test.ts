/**
 * Jobs with network "egress" (P33's "network on" mode): the job reaches allowed destinations over
 * HTTP and HTTPS-style CONNECT through the proxy its worker serves inside the job's own network
 * namespace, and nothing else. Attacked from inside the job: the worker's Redis, the API, the
 * stack's registry (which the service itself may reach), cloud metadata, private networks, a name
 * resolving to loopback, and every direct route. The "public" destination here is a server on
 * loopback that the workers' SBX_JOB_EGRESS_ALLOW names (there is no internet in CI).
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startRedis, type RunningRedis } from '../harness/redis.ts';
import { useStack } from '../harness/use-stack.ts';

const origin = http.createServer((req, res) => res.end(`public says hi to ${req.method} ${req.url}\n`));
await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
const originPort = (origin.address() as AddressInfo).port;
after(() => new Promise<void>((r) => { origin.closeAllConnections(); origin.close(() => r()); }));

// Receipts signed, to show what they say of a job's network.
const keyDir = mkdtempSync(join(tmpdir(), 'sbx-network-receipt-'));
const receiptKeyFile = join(keyDir, 'receipt.pem');
writeFileSync(receiptKeyFile, generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
after(() => rmSync(keyDir, { recursive: true, force: true }));

// Every port open to jobs, so that only the address policy stands between a job and what is on loopback.
const e2e = useStack({ workerEnv: { SBX_JOB_EGRESS_ALLOW: `127.0.0.1:${originPort}`, SBX_JOB_EGRESS_PORTS: '*', SBX_RECEIPT_KEY_FILE: receiptKeyFile } });
const receiptOf = (doc: { receipt?: { payload: string } }) => JSON.parse(doc.receipt!.payload) as { network?: unknown };
let target: RunningRedis;
before(async () => {
  target = await startRedis();
});
after(async () => {
  await target?.stop();
});

const connectionsReceived = async (client: ReturnType<RunningRedis['client']>) => Number(/total_connections_received:(\d+)/.exec(await client.info('stats'))?.[1]);
/** A shell line that sends a CONNECT (and `then`, tunnelled) to the job's proxy and prints the answer's first line. */
const connect = (authority: string, then = '') => `printf 'CONNECT ${authority} HTTP/1.1\\r\\n\\r\\n${then}' | nc 127.0.0.1 3128 | head -1`;
const run = (command: string, extra: Record<string, unknown> = {}) => e2e.api.submit({ image: e2e.stack.images.busybox, command: ['sh', '-c', command], network: 'egress', ...extra }, { wait: true });

describe('network "egress"', () => {
  test('the job reaches an allowed destination with plain HTTP (wget, HTTP_PROXY as set for it) and through CONNECT; its document counts it', async () => {
    const res = await run([
      'echo "$HTTP_PROXY $HTTPS_PROXY"',
      `wget -q -O - http://127.0.0.1:${originPort}/over-http`,
      `printf 'CONNECT 127.0.0.1:${originPort} HTTP/1.1\\r\\n\\r\\nGET /through-a-tunnel HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n' | nc 127.0.0.1 3128 | grep -E '^HTTP|public'`,
    ].join('; '), { env: { NO_PROXY: '', no_proxy: '' } }); // the "public" server is on 127.0.0.1, which NO_PROXY would skip
    assert.equal(res.body.status, 'succeeded', JSON.stringify(res.body));
    assert.equal(res.body.output?.stdout, [
      'http://127.0.0.1:3128 http://127.0.0.1:3128',
      'public says hi to GET /over-http',
      'HTTP/1.1 200 Connection established\r',
      'HTTP/1.1 200 OK\r',
      'public says hi to GET /through-a-tunnel',
      '',
    ].join('\n'));
    const egress = res.body.egress!;
    assert.equal(egress.connections, 2);
    assert.equal(egress.refused, 0);
    // The tunnelled request's 62 bytes, and the plain-HTTP request's head (counted since heads count).
    assert.ok(egress.bytesSent > 62 + 40 && egress.bytesSent < 62 + 1000, JSON.stringify(egress));
    assert.ok(egress.bytesReceived > 100, JSON.stringify(egress));
    assert.deepEqual(receiptOf(res.body).network, { mode: 'egress', egressHosts: null, connections: 2, refused: 0, bytesSent: egress.bytesSent, bytesReceived: egress.bytesReceived }, 'the signed receipt says the job had network');
  });

  test('startedAt is stamped before the command runs, its egress proxy\'s setup included: finishedAt − startedAt covers usage.wallMs', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await run('true');
      assert.equal(res.body.status, 'succeeded', JSON.stringify(res.body));
      const { startedAt, finishedAt } = res.body.timings;
      const span = Date.parse(finishedAt!) - Date.parse(startedAt!);
      // Both stamps are whole milliseconds: at most 1 ms each way.
      assert.ok(span + 2 >= res.body.usage!.wallMs, `finishedAt − startedAt ${span} ms, usage.wallMs ${res.body.usage!.wallMs} ms`);
    }
  });

  test('from inside the job: Redis, the API, the registry, metadata and private addresses are refused, nothing reaches them, and there is no other way out', async () => {
    const redis = target.client(); // one connection, counted before and after alike
    const redisBefore = await connectionsReceived(redis);
    const api = new URL(e2e.stack.apiUrl);
    const registry = e2e.stack.registry.host;
    const refused = [`127.0.0.1:${target.port}`, `localhost:${target.port}`, `[::ffff:127.0.0.1]:${target.port}`, `2130706433:${target.port}`, `127.0.0.1:${api.port}`, registry, '169.254.169.254:80', '10.0.0.1:80', '172.17.0.1:2375'];
    const res = await run([
      ...refused.map((a) => connect(a)),
      `wget -q -O - http://127.0.0.1:${target.port}/ 2>&1 | head -1`, // (busybox wget -T crashes on an error answer)
      // the namespace itself: loopback only, so nothing but the proxy can go out
      "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '",
      `nc -w 2 10.0.0.1 80 </dev/null 2>&1 | head -1; echo direct=$?`,
      'ip route 2>/dev/null | wc -l',
    ].join('; '), { env: { NO_PROXY: '', no_proxy: '' } });
    assert.equal(res.body.status, 'succeeded', JSON.stringify(res.body));
    const lines = res.body.output!.stdout.split('\n');
    assert.deepEqual(lines.slice(0, refused.length), refused.map(() => 'HTTP/1.1 403 Forbidden\r'), res.body.output!.stdout);
    assert.match(lines[refused.length]!, /403/, 'wget through the proxy to Redis');
    assert.equal(lines[refused.length + 1], 'lo', 'the job\'s only interface');
    assert.match(res.body.output!.stdout, /Network is unreachable|can't connect/i);
    assert.equal(lines.at(-2), '0', 'no route at all');
    assert.equal(await connectionsReceived(redis), redisBefore, 'redis-server accepted no connection from the proxy');
    const egress = res.body.egress!;
    assert.equal(egress.connections, 0);
    assert.equal(egress.refused, refused.length + 1);
    assert.deepEqual(egress.refusals[0], { host: '127.0.0.1', port: target.port, reason: '127.0.0.1 is not a public address' });
    assert.match(egress.refusals[1]!.reason, /localhost has no public address/);
  });

  test('egressHosts narrows it to named hosts; without network "egress" there is no proxy at all', async () => {
    const narrowed = await run(connect(`127.0.0.1:${originPort}`), { egressHosts: ['pypi.org', '*.pythonhosted.org'] });
    assert.deepEqual([narrowed.body.network, narrowed.body.egressHosts], ['egress', ['pypi.org', '*.pythonhosted.org']], 'the document says how the job was networked');
    assert.equal(narrowed.body.output?.stdout, 'HTTP/1.1 403 Forbidden\r\n');
    assert.match(narrowed.body.egress!.refusals[0]!.reason, /127\.0\.0\.1 is not one of the job's egressHosts/);

    const none = await e2e.api.submit({ image: e2e.stack.images.busybox, command: ['sh', '-c', `${connect(`127.0.0.1:${originPort}`)}; echo "proxy env: [$HTTP_PROXY]"`] }, { wait: true });
    assert.equal(none.body.status, 'succeeded');
    assert.equal(none.body.output?.stdout, 'proxy env: []\n', 'nothing listens on 3128 and no proxy is set');
    assert.equal(none.body.egress, undefined);
    assert.deepEqual([none.body.network, none.body.egressHosts], ['none', undefined]);
    assert.equal(receiptOf(none.body).network, undefined, 'absent: loopback only');
    assert.deepEqual(receiptOf(narrowed.body).network, { mode: 'egress', egressHosts: ['pypi.org', '*.pythonhosted.org'], connections: 0, refused: 1, bytesSent: 0, bytesReceived: 0 });
  });

  test('bad network requests are 400s naming the field', async () => {
    const bad = [
      [{ network: 'host' }, 'network'],
      [{ network: 'bridge' }, 'network'],
      [{ egressHosts: ['pypi.org'] }, 'egressHosts'],
      [{ network: 'egress', egressHosts: ['10.0.0.1'] }, 'egressHosts.0'],
      [{ network: 'egress', egressHosts: ['http://pypi.org'] }, 'egressHosts.0'],
      [{ network: 'egress', egressHosts: [] }, 'egressHosts'],
    ] as const;
    for (const [extra, path] of bad) {
      const res = await e2e.api.submit({ image: e2e.stack.images.busybox, command: ['true'], ...extra });
      assert.equal(res.status, 400, JSON.stringify(extra));
      const body = res.body as unknown as { error: { code: string; details?: { path: string }[] } };
      assert.equal(body.error.code, 'invalid_request');
      assert.equal(body.error.details?.[0]?.path, path, JSON.stringify(body));
    }
  });
});

// Last in this file: it replaces the stack's worker.
test('a worker with SBX_JOB_EGRESS=false ends such a job invalid_request, saying so, while the API (allowing it) accepted it', async () => {
  await e2e.stack.workers[0]!.kill('SIGTERM');
  await e2e.stack.startWorker({ SBX_JOB_EGRESS: 'false' });
  const res = await run('echo should not run');
  assert.equal(res.body.status, 'error', JSON.stringify(res.body));
  assert.deepEqual(res.body.error, { code: 'invalid_request', message: 'network "egress" is turned off on this worker (SBX_JOB_EGRESS=false)' });
  assert.equal(res.body.output?.stdout ?? '', '');
  const plain = await e2e.api.submit({ image: e2e.stack.images.busybox, command: ['echo', 'still runs'] }, { wait: true });
  assert.equal(plain.body.output?.stdout, 'still runs\n');
});
