import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { InvalidImageError } from '../../../../core/src/errors.ts';
import { buildTar } from '../../../../test/fixtures/oci-builder.ts';
import { unpackLayer } from './layer-unpack.ts';
import { UnpackPool } from './unpack-pool.ts';

const pool = new UnpackPool(1, 300);
const dirs: string[] = [];
after(async () => {
  await pool.close();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function dir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sbx-pool-'));
  dirs.push(d);
  return d;
}

const fail = (d: string) => new InvalidImageError('pool/test', d);

test('a slow source is not mistaken for a stalled worker; jobs reuse the worker', { timeout: 30_000 }, async () => {
  const content = randomBytes(100_000);
  const gz = gzipSync(await buildTar([{ type: 'file', path: 'a/b.txt', content }]));
  // Pauses longer than the pool's 300 ms stall limit, while the worker owes nothing.
  const slow = Readable.from(
    (async function* () {
      for (let o = 0; o < gz.length; o += 1000) {
        if (o % 25_000 === 0) await new Promise((r) => setTimeout(r, 400));
        yield gz.subarray(o, o + 1000);
      }
    })(),
  );
  const first = await dir();
  const stats = await unpackLayer(slow, first, { compression: 'gzip', diffId: null, fail, pool });
  assert.equal(stats.files, 1);
  assert.ok(readFileSync(join(first, 'a/b.txt')).equals(content));
  // A failing job, then a good one on the same worker: no state leaks between jobs.
  await assert.rejects(unpackLayer(Readable.from([gzipSync(await buildTar([{ type: 'raw', header: { name: '../x', type: 'file' }, content: 'x' }]))]), await dir(), { compression: 'gzip', diffId: null, fail, pool }), /escapes the layer/);
  const again = await dir();
  await unpackLayer(Readable.from([gz]), again, { compression: 'gzip', diffId: null, fail, pool });
  assert.ok(readFileSync(join(again, 'a/b.txt')).equals(content));
});

test('a source error is reported as such, after the worker let go of the directory', { timeout: 30_000 }, async () => {
  const gz = gzipSync(await buildTar([{ type: 'file', path: 'f', content: 'y'.repeat(50_000) }]));
  const broken = Readable.from(
    (async function* () {
      yield gz.subarray(0, 100);
      throw new Error('connection reset by peer');
    })(),
  );
  await assert.rejects(unpackLayer(broken, await dir(), { compression: 'gzip', diffId: null, fail, pool }), /connection reset by peer/);
});

test('threads are shared between tenants: layers of one tenant whose downloads hang leave a thread for another\'s', { timeout: 30_000 }, async () => {
  const shared = new UnpackPool(2, 120_000);
  const gz = gzipSync(await buildTar([{ type: 'file', path: 'f', content: 'b' }]));
  // Tenant A: three layers whose bytes never come (a registry that stopped sending).
  const hanging = [0, 1, 2].map(() => new PassThrough().on('error', () => {})); // the waiting one has no reader yet
  const dirsA = await Promise.all(hanging.map(() => dir()));
  const stuck = hanging.map((source, i) => unpackLayer(() => Promise.resolve(source), dirsA[i]!, { compression: 'gzip', diffId: null, fail, pool: shared, requester: { tenant: 'team-a', priority: 2 } }).catch((e: Error) => e));
  await new Promise((r) => setTimeout(r, 300)); // team-a's layers take their threads first
  try {
    const b = unpackLayer(Readable.from([gz]), await dir(), { compression: 'gzip', diffId: null, fail, pool: shared, requester: { tenant: 'team-b', priority: 1 } });
    const late = new Promise<'pending'>((r) => setTimeout(() => r('pending'), 10_000).unref());
    const outcome = await Promise.race([b, late]);
    assert.notEqual(outcome, 'pending', 'team-b\'s layer waited for a thread while team-a\'s held them all');
    assert.equal((outcome as { files: number }).files, 1);
  } finally {
    for (const s of hanging) s.destroy(new Error('the registry went away'));
    await Promise.all(stuck);
    await shared.close();
  }
});
