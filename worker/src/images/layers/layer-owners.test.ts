/**
 * Entry owners a tar can hold and chown cannot take (P61): base-256 numeric fields hold up to 2^56
 * and negative values; chown takes 0 to 2^32 - 1, and reads 2^32 - 1 ((uid_t)-1) as "leave it as it
 * is", which would keep the file root's. Each is refused as the image's fault naming the entry
 * (`invalid_image`), never an `internal` ERR_OUT_OF_RANGE; the largest real id, 2^32 - 2, is kept.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { InvalidImageError } from '../../../../core/src/errors.ts';
import { unpackLayer, type UnpackOptions } from './layer-unpack.ts';
import { UnpackPool } from './unpack-pool.ts';
import { rawTarHeader } from '../../../../test/fixtures/raw-tar-header.ts';

const ROOT = process.geteuid?.() === 0;
const splitPool = new UnpackPool(2);
after(() => splitPool.close());

const MODES: Array<{ name: string; options: Partial<UnpackOptions> }> = [
  { name: 'files written by the decompressing thread', options: {} },
  { name: 'files written by a second thread', options: { pool: splitPool, writerThread: true } },
  { name: 'in this thread', options: { inThread: true } },
];

/** A layer of one entry of `type` ('0' file, '5' directory, '2' symlink, '6' FIFO) with these owner ids. */
function layer(type: string, uid: bigint, gid: bigint): Buffer {
  const blocks = [rawTarHeader({ name: 'd/', type: '5', uid: 0n, gid: 0n })];
  const name = type === '5' ? 'd/e/' : 'd/e';
  if (type === '0') blocks.push(rawTarHeader({ name, type, uid, gid, size: 3 }), Buffer.concat([Buffer.from('hi\n'), Buffer.alloc(509)]));
  else blocks.push(rawTarHeader({ name, type, uid, gid, linkname: type === '2' ? 'target' : '' }));
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks));
}

async function unpack(bytes: Buffer, options: Partial<UnpackOptions>): Promise<{ dir: string; outcome: unknown }> {
  const dir = await mkdtemp(join(tmpdir(), 'sbx-owners-'));
  const outcome = await unpackLayer(Readable.from([bytes]), dir, {
    compression: 'gzip',
    diffId: null,
    fail: (detail) => new InvalidImageError('test/owners', detail),
    ...options,
  }).then(() => null, (e: unknown) => e);
  return { dir, outcome };
}

const TYPES: Array<[string, string]> = [['0', 'file'], ['5', 'directory'], ['2', 'symlink'], ['6', 'FIFO']];
const BAD: Array<[bigint, bigint, RegExp]> = [
  [2n ** 32n, 0n, /has owner id 4294967296; ids are 0-4294967294/],
  [0n, 2n ** 32n, /has group id 4294967296; ids are 0-4294967294/],
  [2n ** 40n + 7n, 5n, /has owner id 1099511627783/],
  [2n ** 56n - 1n, 2n ** 56n - 1n, /has owner id 72057594037927940/],
  [-1n, 0n, /has owner id -1;/],
  [0n, -5n, /has group id -5;/],
  // (uid_t)-1: chown would leave the entry root's without a word.
  [4294967295n, 0n, /has owner id 4294967295;/],
  [0n, 4294967295n, /has group id 4294967295;/],
];

for (const mode of MODES) {
  test(`owners chown cannot take are the image's fault naming the entry (${mode.name})`, async () => {
    const broke: string[] = [];
    for (const [type, kind] of TYPES) {
      for (const [uid, gid, message] of BAD) {
        const { dir, outcome } = await unpack(layer(type, uid, gid), mode.options);
        await rm(dir, { recursive: true, force: true });
        const ok = outcome instanceof InvalidImageError && outcome.code === 'invalid_image' && /entry "d\/e"/.test(outcome.message) && message.test(outcome.message);
        if (!ok) broke.push(`${kind} ${uid}:${gid} → ${outcome === null ? 'unpacked' : `${(outcome as { code?: string }).code}: ${(outcome as Error).message}`}`);
      }
    }
    assert.deepEqual(broke, [], `${broke.length} of ${TYPES.length * BAD.length} entries broke the contract:\n${broke.join('\n')}`);
  });

  test(`the largest id, 4294967294, is kept (${mode.name})`, async () => {
    for (const [type, kind] of TYPES) {
      const { dir, outcome } = await unpack(layer(type, 4294967294n, 4294967294n), mode.options);
      try {
        assert.equal(outcome, null, `${kind}: ${String(outcome)}`);
        const st = lstatSync(join(dir, 'd/e'));
        if (ROOT) assert.deepEqual([st.uid, st.gid], [4294967294, 4294967294], kind);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }
  });
}
