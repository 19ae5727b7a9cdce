/**
 * A worker that is pid 1 (in a container, as the shipped Dockerfile, compose file and DaemonSet run
 * it) is pid 1 again after a crash. Its temp dirs and download locks named only the pid, so the
 * restarted worker took its dead predecessor's for its own: a half-unpacked layer stayed in the
 * cache's temp dir for good (one more per crash, counted nowhere), and the next pull of that layer
 * waited out the dead holder's lock (auditor: 28.6 s). Both now carry the process's start time.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startFakeRegistry, type FakeRegistry } from '../../../../test/fixtures/fake-registry.ts';
import { buildImage, buildLayer } from '../../../../test/fixtures/oci-builder.ts';
import { TempImageStores } from '../../../../test/harness/temp-image-store.ts';

const puller = join(import.meta.dirname, '..', '..', '..', '..', 'test', 'fixtures', 'pull-image.ts');
let fake: FakeRegistry;
const stores = new TempImageStores('sbx-pid-reuse-');
before(async () => {
  fake = await startFakeRegistry();
});
after(async () => {
  fake.hook = null;
  await stores.cleanup();
  await fake.stop();
});

/** The pull as pid 1 of a new pid namespace; its output lines, parsed, as they come. */
function asPid1(root: string, ref: string) {
  const p = spawn('unshare', ['--pid', '--fork', '--mount-proc', process.execPath, '--import', 'tsx', puller, root, ref], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: Array<Record<string, unknown>> = [];
  let buffered = '';
  p.stdout.on('data', (d: Buffer) => {
    buffered += d.toString();
    for (let i = buffered.indexOf('\n'); i >= 0; i = buffered.indexOf('\n')) {
      lines.push(JSON.parse(buffered.slice(0, i)) as Record<string, unknown>);
      buffered = buffered.slice(i + 1);
    }
  });
  return { p, lines, exited: new Promise<void>((r) => p.once('exit', () => r())) };
}

test('as pid 1, SIGKILLed mid-unpack and started again as pid 1: the dead one\'s temp dir is swept and its download lock not waited for', { timeout: 120_000 }, async () => {
  const layer = await buildLayer(Array.from({ length: 200 }, (_, i) => ({ type: 'file' as const, path: `f${i}`, content: randomBytes(100_000) })), { compression: 'none' });
  fake.add('pid1/img', 'latest', buildImage({ layers: [layer] }));
  let stall = true;
  fake.hook = (req, res, ctx) => {
    if (!stall || !req.url?.includes(`/blobs/${layer.digest}`) || !ctx.blob) return false;
    res.writeHead(200, { 'content-length': String(ctx.blob.bytes.length), 'content-type': 'application/octet-stream' });
    res.write(ctx.blob.bytes.subarray(0, ctx.blob.bytes.length / 2)); // half the layer, then nothing
    return true;
  };
  const root = await stores.root();
  const ref = `${fake.host}/pid1/img:latest`;
  const first = asPid1(root, ref);
  const started = Date.now();
  const unpacking = () => (existsSync(join(root, 'tmp')) ? (readdirSync(join(root, 'tmp'), { recursive: true }) as string[]) : []).filter((x) => x.includes('layer-') && x.includes('/f')).length > 50;
  while (!unpacking()) {
    assert.ok(Date.now() - started < 60_000, 'the unpack never started');
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(first.lines[0]?.pid, 1);
  process.kill(Number(execFileSync('pgrep', ['-P', String(first.p.pid)], { encoding: 'utf8' }).trim()), 'SIGKILL');
  await first.exited;
  const left = readdirSync(join(root, 'tmp'));
  assert.equal(left.length, 1, 'the dead worker\'s temp dir');

  stall = false;
  const second = asPid1(root, ref);
  await second.exited;
  const [opened, pulled] = second.lines as [{ pid: number; tmp: string[] }, { pulledMs: number }];
  assert.equal(opened.pid, 1);
  assert.ok(!opened.tmp.includes(left[0]!), `swept at open: ${opened.tmp.join(' ')}`);
  assert.ok(pulled.pulledMs < 20_000, `the pull waited ${pulled.pulledMs} ms for the dead worker's download lock (its stale limit is 30 s)`);
  assert.deepEqual(readdirSync(join(root, 'tmp')), []);
});
