/**
 * A pull's deadline or cancel stops the unpacking of its layer whatever the thread is at (P41):
 * also once the whole blob has been handed to the thread and only its files are left to write, or
 * while the layer waits for its config's diffID. Before, in the single-thread mode, an abort after
 * the blob was in reached nothing: the thread wrote the layer to its end (the tenant's thread share
 * held all along) and the unpack resolved as if nothing happened; one waiting for a diffID that never
 * came waited forever. Now the thread stops between entries, the unpack rejects with the pull's
 * reason, nothing writes to the directory after, and the tenant's thread serves its next layer.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { gzipSync } from 'node:zlib';
import { buildTar } from '../../../../test/fixtures/oci-builder.ts';
import { unpackLayer, type UnpackOptions } from './layer-unpack.ts';
import { UnpackPool } from './unpack-pool.ts';

/** One unpack thread (a tenant may use one) and one writer thread. */
const pool = new UnpackPool(1);
const dirs: string[] = [];
after(async () => {
  await pool.close();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const fail = (detail: string) => new Error(`rejected: ${detail}`);
const N = 60_000;
/** Many empty files: seconds of writing from one chunk of about a megabyte. */
const slowLayer = (async () => gzipSync(await buildTar(Array.from({ length: N }, (_, i) => ({ type: 'file' as const, path: `d${i % 10}/f${i}`, content: '' })))))();
const smallLayer = (async () => gzipSync(await buildTar([{ type: 'file', path: 'ok', content: 'ok' }])))();

async function newDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sbx-unpack-abort-'));
  dirs.push(dir);
  return dir;
}

const files = (dir: string): number => readdirSync(dir, { recursive: true }).length;

async function until(what: string, check: () => boolean, ms = 60_000): Promise<void> {
  for (const end = Date.now() + ms; !check(); await sleep(10)) if (Date.now() > end) throw new Error(`waited ${ms} ms for ${what}`);
}

const MODES: Array<{ name: string; options: Partial<UnpackOptions> }> = [
  { name: 'one thread', options: {} },
  { name: 'files written by a second thread', options: { writerThread: true } },
];

const CASES: Array<{ name: string; options: Partial<UnpackOptions>; allWritten: boolean }> = [
  { name: 'while the thread writes the files of a blob that is all in', options: { diffId: null }, allWritten: false },
  { name: 'while the layer, its files written, waits for a diffID that never comes', options: { diffId: () => new Promise<string | null>(() => {}) }, allWritten: true },
];

for (const mode of MODES) {
  for (const c of CASES) {
    test(`an abort ${c.name} stops it and frees the thread (${mode.name})`, { timeout: 120_000 }, async () => {
      const dir = await newDir();
      const controller = new AbortController();
      const unpacking = unpackLayer(Readable.from([await slowLayer]), dir, {
        compression: 'gzip',
        diffId: null,
        fail,
        pool,
        signal: controller.signal,
        requester: { tenant: 'team-a' },
        ...mode.options,
        ...c.options,
      }).then(() => 'it unpacked the whole layer', (e: unknown) => e);
      if (c.allWritten) await until('every file', () => files(dir) === N + 10);
      else await until('the first files', () => existsSync(join(dir, 'd9/f99')));
      const reason = new Error("the pull's deadline passed");
      controller.abort(reason);
      const outcome = await Promise.race([unpacking, sleep(30_000, undefined, { ref: false }).then(() => 'still unpacking 30 s after the abort')]);
      assert.equal(outcome, reason, `the unpack: ${String(outcome)}`);
      const written = files(dir);
      if (!c.allWritten) assert.ok(written < N, `${written} entries written: it did not stop between entries`);
      await sleep(300);
      assert.equal(files(dir), written, 'something wrote to the directory after the unpack settled');
      // The thread and the tenant's share of them are free: the tenant's next layer unpacks.
      const next = await newDir();
      const stats = await unpackLayer(Readable.from([await smallLayer]), next, { compression: 'gzip', diffId: null, fail, pool, requester: { tenant: 'team-a' } });
      assert.equal(stats.files, 1);
    });
  }
}
