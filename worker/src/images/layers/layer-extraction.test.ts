/**
 * layer-extraction.ts: the synchronous core bounds what one step() does, so an unpack worker fed a
 * bomb as one chunk still yields to its event loop (and sees an abort) every few MiB of output.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { feedChunk, LayerExtraction } from './layer-extraction.ts';

const fail = (d: string) => Object.assign(new Error(d), { rejected: true });
const limits = { maxLayerBytes: 1024 ** 3, maxEntries: 100 };

/** A gzip of `mib` MiB of zero blocks: a valid (empty) tar that expands about 1000-fold. */
function zeroBomb(mib: number): Buffer {
  return gzipSync(Buffer.alloc(mib * 1024 * 1024), { level: 9 });
}

test('one step() handles a bounded number of pieces, not a whole chunk however far it expands', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sbx-extraction-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const extraction = new LayerExtraction(dir, { compression: 'gzip', diffId: null, limits, fail });
  extraction.push(zeroBomb(64));
  let steps = 1;
  while (!extraction.step(4)) steps++;
  // 64 MiB in pieces of at most 256 KiB, 4 per step: at least 64 steps.
  assert.ok(steps >= 64, `${steps} steps`);
  const result = extraction.end();
  assert.equal(result.tarBytes, 64 * 1024 * 1024);
  assert.deepEqual(await readdir(dir), []);
});

test('feedChunk stops at the next step when told to (an abort), and closes the extraction', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sbx-extraction-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const extraction = new LayerExtraction(dir, { compression: 'gzip', diffId: null, limits, fail });
  let checks = 0;
  const aborted = new Error('unpack aborted');
  await assert.rejects(feedChunk(extraction, zeroBomb(256), () => (++checks > 2 ? aborted : null)), (e) => e === aborted);
  assert.equal(checks, 3, 'it checked before the chunk and after each of the first two steps only');
  assert.throws(() => extraction.step(), /already ended/);
});

test('the size cap rejects inside a chunk, before the rest of it is decoded', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sbx-extraction-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const extraction = new LayerExtraction(dir, { compression: 'gzip', diffId: null, limits: { ...limits, maxLayerBytes: 1024 * 1024 }, fail });
  await assert.rejects(feedChunk(extraction, zeroBomb(64)), /more than 1048576 bytes/);
});

test('gzip trailers: skipped only when the diffID is checked; a bad crc32 with a wrong diffID is still refused', async (t) => {
  const { buildTar } = await import('../../../../test/fixtures/oci-builder.ts');
  const { createHash } = await import('node:crypto');
  const tarBytes = await buildTar([{ type: 'file', path: 'a', content: 'hello\n' }]);
  const diffId = 'sha256:' + createHash('sha256').update(tarBytes).digest('hex');
  const badCrc = gzipSync(tarBytes);
  badCrc[badCrc.length - 6]! ^= 0xff;
  const run = async (id: string | null) => {
    const dir = await mkdtemp(join(tmpdir(), 'sbx-extraction-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const extraction = new LayerExtraction(dir, { compression: 'gzip', diffId: id, limits, fail });
    await feedChunk(extraction, badCrc);
    return extraction.end();
  };
  assert.equal((await run(diffId)).stats?.files, 1, 'the diffID (sha256 of exactly these bytes) verified the content');
  await assert.rejects(run('sha256:' + '0'.repeat(64)), /uncompressed content has digest/);
  await assert.rejects(run(null), /incorrect data check/);
});
