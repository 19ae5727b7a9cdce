/**
 * A job's output files (`outputFiles`) through the whole stack: what the patterns matched when the
 * command ended (or a timeout ended it) is listed in the job document and its bytes come from GET /v1/jobs/{id}/files, to
 * the job's tenant only; limits.outputBytes bounds them, the tenant's storage budget is charged for
 * them, and what could never be collected is refused at submission (P56; the launcher's side:
 * native/test/output-files.test.ts).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, test } from 'node:test';
import { SbxClient } from '../harness/api-client.ts';
import { startStack, type Stack } from '../harness/stack.ts';

const KEY_A = 'key-outfiles-alpha-aaaaaaaaaaaaaa';
const KEY_B = 'key-outfiles-beta-bbbbbbbbbbbbbbb';
const KEY_SMALL = 'key-outfiles-small-ccccccccccccccc';
const KEY_ADMIN = 'key-outfiles-admin-ddddddddddddddd';

let stack: Stack;
let a: SbxClient;
let b: SbxClient;

before(async () => {
  const keys = JSON.stringify([
    { key: KEY_A, tenant: 'alpha' },
    { key: KEY_B, tenant: 'beta' },
    { key: KEY_SMALL, tenant: 'small', quota: { storedBytesPerHour: 64 * 1024 } },
    { key: KEY_ADMIN, tenant: 'ops', role: 'admin' },
  ]);
  stack = await startStack({ adminKey: KEY_ADMIN, env: { SBX_API_KEYS: keys } });
  a = new SbxClient(stack.apiUrl, KEY_A);
  b = new SbxClient(stack.apiUrl, KEY_B);
});
after(async () => {
  await stack?.stop();
});

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

test('what the patterns matched when the command ended: listed in the document, its bytes from /files, to its tenant only', async () => {
  const script = 'mkdir -p out && echo one > out/1.txt && printf "\\0\\1\\2" > out/2.txt && echo skipped > out/3.log && echo "{}" > /tmp/report.json';
  const { status, body } = await a.submit({
    image: stack.images.busybox, workdir: '/tmp/w', command: ['sh', '-c', script],
    outputFiles: ['out/*.txt', '/tmp/report.json', 'nothing/*'],
  }, { wait: true });
  assert.equal(status, 200);
  assert.equal(body.status, 'succeeded', JSON.stringify(body));
  assert.deepEqual(body.outputFiles, [
    { path: 'out/1.txt', bytes: 4, keptBytes: 4, truncated: false, sha256: sha256('one\n') },
    { path: 'out/2.txt', bytes: 3, keptBytes: 3, truncated: false, sha256: sha256(Buffer.from([0, 1, 2])) },
    { path: '/tmp/report.json', bytes: 3, keptBytes: 3, truncated: false, sha256: sha256('{}\n') },
    { path: 'nothing/*', bytes: 0, keptBytes: 0, truncated: false, sha256: sha256(''), skipped: 'no match' },
  ]);
  const files = await a.request<{ status: string; items: Array<{ path: string; content: string }> }>('GET', `/v1/jobs/${body.id}/files`);
  assert.equal(files.status, 200);
  assert.deepEqual(files.body.items.map((f) => [f.path, Buffer.from(f.content, 'base64').toString('latin1')]), [
    ['out/1.txt', 'one\n'], ['out/2.txt', '\0\x01\x02'], ['/tmp/report.json', '{}\n'], ['nothing/*', ''],
  ]);
  const other = await b.request('GET', `/v1/jobs/${body.id}/files`);
  assert.equal(other.status, 404, 'another tenant\'s job is as absent as an unknown one');
});

test('a job that times out, or goes silent, still has its files (a CI step\'s partial report): the rest of it is killed first', async () => {
  const script = 'echo "<testsuite tests=\\"1\\"/>" > /tmp/junit.xml; (while :; do sleep 1; done) & sleep 60';
  const timedOut = await a.submit({
    image: stack.images.busybox, command: ['sh', '-c', script], outputFiles: ['/tmp/junit.xml'], limits: { timeoutMs: 2000 },
  }, { wait: true });
  assert.equal(timedOut.body.status, 'timeout', JSON.stringify(timedOut.body));
  assert.deepEqual(timedOut.body.outputFiles?.map((f) => [f.path, f.bytes]), [['/tmp/junit.xml', 23]]);
  const files = await a.request<{ items: Array<{ path: string; content: string }> }>('GET', `/v1/jobs/${timedOut.body.id}/files`);
  assert.equal(Buffer.from(files.body.items[0]!.content, 'base64').toString(), '<testsuite tests="1"/>\n');
  const silent = await a.submit({
    image: stack.images.busybox, command: ['sh', '-c', script], outputFiles: ['/tmp/junit.xml'], limits: { outputIdleTimeoutMs: 2000 },
  }, { wait: true });
  assert.equal(silent.body.error?.code, 'output_idle_timeout', JSON.stringify(silent.body));
  assert.deepEqual(silent.body.outputFiles?.map((f) => f.path), ['/tmp/junit.xml']);
});

test('limits.outputBytes bounds the files together: past it a file is cut and says so', async () => {
  const { body } = await a.submit({
    image: stack.images.busybox, command: ['sh', '-c', 'head -c 3000 /dev/zero > /tmp/a; head -c 3000 /dev/zero > /tmp/b'],
    outputFiles: ['/tmp/a', '/tmp/b'], limits: { outputBytes: 4096 },
  }, { wait: true });
  assert.deepEqual(body.outputFiles!.map((f) => [f.path, f.bytes, f.keptBytes, f.truncated]), [['/tmp/a', 3000, 3000, false], ['/tmp/b', 3000, 1096, true]]);
});

test('past the tenant\'s storage budget the files are listed without their bytes (outputFilesDropped)', async () => {
  const small = new SbxClient(stack.apiUrl, KEY_SMALL);
  const { body } = await small.submit({
    image: stack.images.busybox, command: ['sh', '-c', 'head -c 200000 /dev/zero > /tmp/big'],
    outputFiles: ['/tmp/big'], limits: { outputBytes: 1 << 20 },
  }, { wait: true });
  assert.equal(body.status, 'succeeded', JSON.stringify(body));
  assert.equal(body.outputFilesDropped, true);
  assert.equal(body.outputFiles![0]!.keptBytes, 200000, 'collected, then not kept');
  const files = await small.request<{ items: unknown[] }>('GET', `/v1/jobs/${body.id}/files`);
  assert.deepEqual(files.body.items, []);
});

test('patterns that could never be collected are refused at submission (400)', async () => {
  for (const [outputFiles, message] of [
    [Array.from({ length: 33 }, (_, i) => `f${i}`), /at most 32 patterns/],
    [[''], /outputFiles\.0/],
    [['a\0b'], /outputFiles\.0.*NUL/],
    ['out/*', /outputFiles/],
  ] as const) {
    const { status, body } = await a.submit({ image: stack.images.busybox, command: ['true'], outputFiles } as never);
    assert.equal(status, 400, JSON.stringify(body));
    assert.match(JSON.stringify(body.error), message);
  }
});
