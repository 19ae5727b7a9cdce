/**
 * A job's input files (`files`) through the whole stack: a grader's script and its input arrive in
 * the job before the command starts, as the job's user, with their modes; what could never be
 * written is refused at submission (400), what the job's user may not write fails the job naming
 * the file, and nothing of it lands on the host (P55; native/test/input-files.test.ts attacks the
 * launcher's side).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { SbxClient } from '../harness/api-client.ts';
import { startStack, type Stack } from '../harness/stack.ts';

let stack: Stack;
let api: SbxClient;
/**
 * A host directory of this test's own, empty: the job's paths name it, and nothing may appear in it.
 * Under /tmp, which the test image has too (the job makes the rest of the path, as its user).
 */
let hostDir = '';

before(async () => {
  stack = await startStack({ env: { SBX_BODY_LIMIT_BYTES: String(4 << 20) } }); // room for more than the smallest diskBytes
  api = new SbxClient(stack.apiUrl);
  hostDir = mkdtempSync('/tmp/sbx-e2e-files-');
});
after(async () => {
  await stack?.stop();
  if (hostDir) rmSync(hostDir, { recursive: true, force: true });
});

const GRADER = '#!/bin/sh\nread a b < input.txt\necho "sum $((a + b)) as $(id -u)"\n';

test('a grader\'s script and its input are in the job before its command starts: bytes, modes, owner', async () => {
  const { status, body } = await api.submit({
    image: stack.images.busybox,
    user: '1000:1000',
    workdir: `${hostDir}/work`, // which the image lacks: made as the job's user, as docker run -w makes it
    command: ['sh', '-c', `./grade.sh && stat -c "%a %u %n" grade.sh input.txt ${hostDir}/work ${hostDir}/abs.bin && od -An -tx1 ${hostDir}/abs.bin`],
    files: [
      { path: 'grade.sh', content: GRADER, mode: '0755' },
      { path: 'input.txt', content: Buffer.from('40 2\n').toString('base64'), encoding: 'base64', mode: 0o600 },
      { path: `${hostDir}/abs.bin`, content: Buffer.from([0, 255, 10]).toString('base64'), encoding: 'base64' },
    ],
  }, { wait: true });
  assert.equal(status, 200);
  assert.equal(body.status, 'succeeded', JSON.stringify(body));
  assert.equal(body.output!.stdout, `sum 42 as 1000\n755 1000 grade.sh\n600 1000 input.txt\n755 1000 ${hostDir}/work\n644 1000 ${hostDir}/abs.bin\n 00 ff 0a\n`);
  assert.deepEqual(readdirSync(hostDir), [], 'nothing on the host');
});

test('files that could never be written are refused at submission with the field named (400)', async () => {
  const bad: Array<[unknown, RegExp]> = [
    [[{ path: 'a', content: 'not base64!', encoding: 'base64' }], /files\.0\.content.*base64/],
    [[{ path: 'dir/', content: 'x' }], /files\.0\.path.*must name a file/],
    [[{ path: '', content: 'x' }], /files\.0\.path/],
    [[{ path: 'a\0b', content: 'x' }], /files\.0\.path.*NUL/],
    [[{ path: `${'d'.repeat(256)}/x`, content: 'x' }], /files\.0\.path.*255 bytes/],
    [[{ path: 'a', content: 'x', mode: 0o4755 }], /files\.0\.mode/],
    [[{ path: 'a', content: 'x', mode: '4755' }], /files\.0\.mode/],
    [[{ path: 'a', content: 'x', owner: 'root' }], /files\.0/],
    [Array.from({ length: 1001 }, (_, i) => ({ path: `f${i}`, content: '' })), /at most 1000 files/],
  ];
  for (const [files, message] of bad) {
    const { status, body } = await api.submit({ image: stack.images.busybox, command: ['true'], files } as never);
    assert.equal(status, 400, `${JSON.stringify(files).slice(0, 100)}: ${JSON.stringify(body)}`);
    assert.equal(body.error?.code, 'invalid_request');
    assert.match(JSON.stringify(body.error), message);
  }
  const big = { image: stack.images.busybox, command: ['true'], limits: { diskBytes: 1 << 20 }, files: [{ path: 'big', content: Buffer.alloc((1 << 20) + 1).toString('base64'), encoding: 'base64' }] };
  const { status, body } = await api.submit(big as never);
  assert.equal(status, 400);
  assert.match(body.error!.message, /files: the files hold 1048577 bytes, more than limits\.diskBytes \(1048576\)/);
});

test('a file the job\'s user may not write fails the job (error invalid_request) naming it; the image is unchanged for the next job', async () => {
  const { status, body } = await api.submit({ image: stack.images.busybox, user: '1000', command: ['true'], files: [{ path: '/etc/passwd', content: 'root::0:0::/:/bin/sh\n' }] }, { wait: true });
  assert.equal(status, 200);
  assert.equal(body.status, 'error', JSON.stringify(body));
  assert.equal(body.error!.code, 'invalid_request');
  assert.equal(body.error!.message, 'files: "/etc/passwd" could not be written in the job: the job\'s user may not write there (open EACCES)');
  const next = await api.submit({ image: stack.images.busybox, command: ['sh', '-c', 'head -1 /etc/passwd'] }, { wait: true });
  assert.equal(next.body.status, 'succeeded');
  assert.doesNotMatch(next.body.output!.stdout, /^root::/);
});
