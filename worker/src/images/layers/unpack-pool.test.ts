import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { InvalidImageError } from '../../../../core/src/errors.ts';
import { buildTar, type LayerEntry } from '../../../../test/fixtures/oci-builder.ts';
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

/** Every path of a tree with what it is: type, mode, and content digest or link target. */
function describeTree(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const path = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(root, path));
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isDirectory()) {
        out.push(`${path} dir ${mode}`);
        walk(path);
      } else if (st.isSymbolicLink()) out.push(`${path} -> ${readlinkSync(join(root, path))}`);
      else out.push(`${path} file ${mode} ${st.nlink} ${createHash('sha256').update(readFileSync(join(root, path))).digest('hex')}`);
    }
  };
  walk('');
  return out;
}

/** About 26 MB in 400 entries: files of every size (one larger than the ring between the threads), directories, links. */
async function mixedLayer(): Promise<{ gz: Buffer; tar: Buffer }> {
  const entries: LayerEntry[] = [{ type: 'dir', path: 'big', mode: 0o750 }];
  entries.push({ type: 'file', path: 'big/six-mib', content: randomBytes(6 * 1024 * 1024), mode: 0o600 });
  for (let i = 0; i < 380; i++) {
    const dir = `d${i % 17}`;
    if (i < 17) entries.push({ type: 'dir', path: dir });
    entries.push({ type: 'file', path: `${dir}/f${i}`, content: randomBytes((i * 104_729) % 110_000), mode: i % 3 ? 0o644 : 0o755 });
  }
  entries.push({ type: 'symlink', path: 'd1/link', target: '../big/six-mib' }, { type: 'hardlink', path: 'd2/hard', target: 'd2/f2' });
  const tar = await buildTar(entries);
  return { gz: gzipSync(tar, { level: 1 }), tar };
}

const sha256 = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex');

test('a layer alone in its pull has its files written by a second thread: the same tree as in one thread', { timeout: 60_000 }, async () => {
  const two = new UnpackPool(2, 120_000);
  try {
    const { gz, tar } = await mixedLayer();
    const split = await dir();
    const before = two.splitLayers;
    const stats = await unpackLayer(Readable.from([gz]), split, { compression: 'gzip', diffId: sha256(tar), fail, pool: two, writerThread: true });
    assert.equal(two.splitLayers, before + 1, 'the layer did not get a second thread');
    const single = await dir();
    const expected = await unpackLayer(Readable.from([gz]), single, { compression: 'gzip', diffId: sha256(tar), fail, inThread: true });
    assert.deepEqual(stats, expected);
    assert.equal(stats.tarBytes, tar.length);
    assert.deepEqual(describeTree(split), describeTree(single));
    // A layer that does not ask keeps to one thread.
    await unpackLayer(Readable.from([gz]), await dir(), { compression: 'gzip', diffId: null, fail, pool: two });
    assert.equal(two.splitLayers, before + 1, 'a layer that did not ask took a second thread');
    // Two layers asking at once of a pool of two: one writer thread, so one of them writes its own files.
    const both = await Promise.all([dir(), dir()]);
    const results = await Promise.all(both.map((d) => unpackLayer(Readable.from([gz]), d, { compression: 'gzip', diffId: null, fail, pool: two, writerThread: true })));
    assert.equal(two.splitLayers, before + 2, 'a pool of two unpack threads has one writer');
    for (const [i, d] of both.entries()) {
      assert.deepEqual(results[i], { ...expected, diffId: null }, 'the same, without the tar\'s sha256 (diffId: null skips it)');
      assert.deepEqual(describeTree(d), describeTree(single));
    }
  } finally {
    await two.close();
  }
});

test('with a second thread, each failure is reported by its cause and both threads serve the next layer', { timeout: 60_000 }, async () => {
  const two = new UnpackPool(2, 120_000);
  const opts = { compression: 'gzip' as const, fail, pool: two, writerThread: true };
  try {
    const { gz, tar } = await mixedLayer();
    // The writing thread rejects an entry after megabytes of files: the decompressing one stops too.
    const escape = gzipSync(Buffer.concat([tar.subarray(0, tar.length - 1024), await buildTar([{ type: 'raw', header: { name: '../../outside', type: 'file' }, content: 'x' }])]));
    await assert.rejects(unpackLayer(Readable.from([escape]), await dir(), { ...opts, diffId: null }), (e: unknown) => e instanceof InvalidImageError && /escapes the layer/.test(e.message));
    // The decompressing thread rejects the content at its end (diffID): the writing one stops.
    await assert.rejects(unpackLayer(Readable.from([gz]), await dir(), { ...opts, diffId: 'sha256:' + '0'.repeat(64) }), /uncompressed content has digest/);
    // The download fails half-way.
    const broken = Readable.from(
      (async function* () {
        yield gz.subarray(0, gz.length >> 1);
        throw new Error('connection reset by peer');
      })(),
    );
    await assert.rejects(unpackLayer(broken, await dir(), { ...opts, diffId: null }), /connection reset by peer/);
    // The pull is abandoned while its download hangs half-way.
    const abandoned = new AbortController();
    const hanging = new PassThrough();
    hanging.write(gz.subarray(0, gz.length >> 1)); // and nothing more
    setTimeout(() => abandoned.abort(new Error('the pull was abandoned')), 300);
    await assert.rejects(unpackLayer(hanging, await dir(), { ...opts, diffId: null, signal: abandoned.signal }), /the pull was abandoned/);
    // Too many entries, counted in the writing thread.
    await assert.rejects(unpackLayer(Readable.from([gz]), await dir(), { ...opts, diffId: null, limits: { maxLayerBytes: 1 << 30, maxEntries: 50 } }), /more than 50 entries/);
    const splitsSoFar = two.splitLayers;
    assert.equal(splitsSoFar, 5);
    const ok = await dir();
    const stats = await unpackLayer(Readable.from([gz]), ok, { ...opts, diffId: sha256(tar) });
    assert.equal(two.splitLayers, splitsSoFar + 1);
    assert.equal(stats.files, 381);
  } finally {
    await two.close();
  }
});

test('a diffID that comes after the download (the config still on its way) is checked at the end, in every mode', { timeout: 60_000 }, async () => {
  const two = new UnpackPool(2, 120_000);
  try {
    const { gz, tar } = await mixedLayer();
    const later = (id: string) => () => new Promise<string>((r) => setTimeout(() => r(id), 50));
    for (const mode of [{ pool: two }, { pool: two, writerThread: true }, { inThread: true }]) {
      const ok = await unpackLayer(Readable.from([gz]), await dir(), { compression: 'gzip', fail, diffId: later(sha256(tar)), ...mode });
      assert.equal(ok.tarBytes, tar.length);
      await assert.rejects(
        unpackLayer(Readable.from([gz]), await dir(), { compression: 'gzip', fail, diffId: later('sha256:' + '0'.repeat(64)), ...mode }),
        (e: unknown) => e instanceof InvalidImageError && /uncompressed content has digest .* its config says sha256:0{64}/.test(e.message),
        JSON.stringify(Object.keys(mode)),
      );
    }
  } finally {
    await two.close();
  }
});
