/**
 * The image cache is root-only on the host (worker/src/images/cache/cache-access.security.test.ts attacks
 * it from outside), yet jobs still start from it and see their image as Docker would: a setuid file
 * keeps mode 4755 and a file capability keeps its security.capability xattr. The worker runs with a
 * state directory prepared as worker/src/main.ts prepares it (0700, prepareStateDir).
 */
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { prepareStateDir } from '../../worker/src/state-dir.ts';
import { SbxClient } from '../harness/api-client.ts';
import { startStack, type Stack } from '../harness/stack.ts';
import { busyboxImage } from '../fixtures/build-images.ts';
import { buildLayer, pushImage } from '../fixtures/oci-builder.ts';
import { buildPrivilegeProbe, capabilityXattr } from '../fixtures/privilege-probe.ts';

let stack: Stack;
let api: SbxClient;
let image: string;
const cap = capabilityXattr();

before(async () => {
  stack = await startStack({ workers: 0 });
  api = new SbxClient(stack.apiUrl);
  const probe = buildPrivilegeProbe();
  const layer = await buildLayer([
    { type: 'dir', path: 'opt' },
    { type: 'file', path: 'opt/privprobe', content: probe, mode: 0o755 },
    { type: 'file', path: 'opt/suid', content: probe, mode: 0o4755, uid: 0, gid: 0 },
    { type: 'file', path: 'opt/capfile', content: probe, mode: 0o755, xattrs: { 'security.capability': cap.text } },
  ]);
  image = `${stack.registry.host}/test/privileged:latest`;
  await pushImage(stack.registry.url, 'test/privileged', 'latest', await busyboxImage({ extraLayers: [layer] }));
  await prepareStateDir(stack.env.SBX_STATE_DIR!, { warn: () => {} });
  await stack.startWorker();
});
after(async () => {
  await stack?.stop();
});

const mode = (path: string) => (statSync(path).mode & 0o7777).toString(8);

test('a job started from the root-only cache sees setuid bits and file capabilities unchanged', async () => {
  const script = 'stat -c "%a %u %g" /opt/suid /opt/capfile; /opt/privprobe caps /opt/capfile; /opt/privprobe caps /opt/suid';
  const { status, body } = await api.submit({ image, command: ['sh', '-c', script] }, { wait: true });
  assert.equal(status, 200);
  // 'failed': the last command finds no xattr on /opt/suid
  assert.equal(body.status, 'failed', `${JSON.stringify(body)}\nworker log:\n${stack.workers[0]!.log().slice(-4000)}`);
  assert.equal(body.exitCode, 1);
  assert.deepEqual(body.output!.stdout.split('\n'), ['4755 0 0', '755 0 0', cap.hex, 'ENODATA', '']);

  // …while on the host nothing of it is reachable by anyone but root.
  const state = stack.env.SBX_STATE_DIR!;
  assert.deepEqual([mode(state), mode(join(state, 'images')), mode(join(state, 'images/layers/sha256'))], ['700', '700', '700']);
});
