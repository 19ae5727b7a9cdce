/**
 * LayerWriter's bookkeeping (layer-writer.ts): the work per entry must not grow with what the layer
 * already holds (a replaced file) or with the entry's depth (its parents). Before: replacing a file
 * walked every path the layer had written (120k files + 120k replacements of one name: 97 s), and
 * each entry looked up every prefix of its path (5,000 files at depth 1900: 32.9 s, 1.07 s at depth 1).
 * Counted as lookups in its maps, not timed. And the semantics that bookkeeping serves stay.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LayerWriter, type TarHeader } from './layer-writer.ts';

/** A Map that counts the lookups made in it and the keys walked over. */
class CountingMap<K, V> extends Map<K, V> {
  static ops = 0;
  override get(key: K): V | undefined {
    CountingMap.ops++;
    return super.get(key);
  }
  override has(key: K): boolean {
    CountingMap.ops++;
    return super.has(key);
  }
  override *keys(): MapIterator<K> {
    for (const key of super.keys()) {
      CountingMap.ops++;
      yield key;
    }
  }
}

const fail = (detail: string) => new Error(`rejected: ${detail}`);

async function writer(t: { after(fn: () => Promise<void>): void }): Promise<{ w: LayerWriter; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'sbx-writer-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const w = new LayerWriter(dir, { fail, chown: false });
  const fields = w as unknown as Record<string, Map<unknown, unknown>>;
  for (const name of ['nodes', 'dirMeta', 'fifos', 'xattrs']) fields[name] = new CountingMap(fields[name]);
  return { w, dir };
}

function add(w: LayerWriter, header: TarHeader, content = ''): void {
  const sink = w.add(header);
  if (sink) {
    sink.write(Buffer.from(content));
    sink.end();
  }
}

test('replacing a file costs the same however many files the layer has', async (t) => {
  const { w, dir } = await writer(t);
  const N = 4_000;
  for (let i = 0; i < N; i++) add(w, { name: `f${i}`, type: 'file', size: 0 });
  CountingMap.ops = 0;
  for (let i = 0; i < N; i++) add(w, { name: 'same', type: i % 3 === 2 ? 'symlink' : 'file', linkname: 'f0', size: 0 });
  const perEntry = CountingMap.ops / N;
  w.finish();
  assert.ok(perEntry < 20, `${CountingMap.ops} lookups for ${N} replacements of one name among ${N} files (${perEntry.toFixed(0)} each)`);
  assert.equal(readdirSync(dir).length, N + 1);
});

test('an entry\'s parents cost about one lookup, not one per component', async (t) => {
  const { w, dir } = await writer(t);
  const deep = Array.from({ length: 400 }, () => 'd').join('/');
  add(w, { name: `${deep}/first`, type: 'file', size: 0 });
  CountingMap.ops = 0;
  const N = 1_000;
  for (let i = 0; i < N; i++) add(w, { name: `${deep}/f${i}`, type: 'file', size: 0 });
  const perEntry = CountingMap.ops / N;
  w.finish();
  assert.ok(perEntry < 20, `${CountingMap.ops} lookups for ${N} files at depth 400 (${perEntry.toFixed(0)} each)`);
  assert.equal(readdirSync(join(dir, deep)).length, N + 1);
});

test('a replaced directory takes what was under it; a replaced file only itself', async (t) => {
  const { w, dir } = await writer(t);
  add(w, { name: 'a/b/c/file', type: 'file', size: 1 }, 'x');
  add(w, { name: 'a/b/fifo', type: 'fifo' });
  add(w, { name: 'a/keep', type: 'file', size: 1 }, 'k');
  add(w, { name: 'a/b', type: 'file', size: 1 }, 'y'); // the directory a/b and its subtree go
  assert.throws(() => w.add({ name: 'a/b/c/again', type: 'file' }), /goes through "a\/b", which is a file/);
  assert.throws(() => w.add({ name: 'h', type: 'link', linkname: 'a/b/c/file' }), /not an earlier file/);
  add(w, { name: 'a/b', type: 'directory' }); // a directory again: empty
  add(w, { name: 'a/b/new', type: 'file', size: 1 }, 'n');
  add(w, { name: 'a/.wh.keep', type: 'file', size: 0 }); // a whiteout replaces the file
  add(w, { name: 'x/y/.wh..wh..opq', type: 'file', size: 0 });
  add(w, { name: 'x', type: 'symlink', linkname: 'a' }); // drops the opaque directory x/y with x
  assert.throws(() => w.add({ name: 'x/z', type: 'file' }), /goes through "x", which is a symlink/);
  const stats = w.finish();
  assert.deepEqual(readdirSync(join(dir, 'a/b')), ['new']);
  assert.ok(lstatSync(join(dir, 'a/keep')).isCharacterDevice(), 'a/keep is a whiteout now');
  assert.deepEqual(stats.opaqueDirs, []);
  assert.ok(lstatSync(join(dir, 'x')).isSymbolicLink());
});

test('a directory thousands deep replaced by a file is removed without overflowing the stack', async (t) => {
  const { w, dir } = await writer(t);
  const deep = Array.from({ length: 1900 }, () => 'd').join('/');
  add(w, { name: `top/${deep}/f`, type: 'file', size: 1 }, 'x');
  add(w, { name: 'top', type: 'file', size: 1 }, 'y'); // before: rmSync's RangeError, the job's `internal`
  w.finish();
  assert.ok(lstatSync(join(dir, 'top')).isFile());
});

test('xattrs Linux refuses on the layer root are named ".", not by the host directory the layer is written in', async (t) => {
  const { w, dir } = await writer(t);
  add(w, { name: './', type: 'directory', xattrs: [{ name: 'user.', value: Buffer.from('v') }] }); // EINVAL: an empty name after the prefix
  add(w, { name: 'f', type: 'file', size: 0, xattrs: [{ name: 'user.', value: Buffer.from('v') }] });
  assert.throws(() => w.finish(), (e: Error) => {
    assert.equal(e.message, 'rejected: its extended attributes could not be set: .: Invalid argument');
    assert.ok(!e.message.includes(dir), e.message);
    return true;
  });
});
