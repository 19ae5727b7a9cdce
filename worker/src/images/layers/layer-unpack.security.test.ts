/**
 * Crafted layers against the unpacker (P32): every escape attempt must leave the host untouched.
 * Each test unpacks into <sandbox>/layer next to <sandbox>/outside (holding a sentinel) and then
 * checks that nothing outside the layer changed, /etc/passwd included.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { InvalidImageError } from '../../../../core/src/errors.ts';
import { buildTar, type LayerEntry } from '../../../../test/fixtures/oci-builder.ts';
import { unpackLayer, type UnpackLimits, type UnpackOptions } from './layer-unpack.ts';
import { UnpackPool } from './unpack-pool.ts';

let sandbox: string;
const passwdHash = () => createHash('sha256').update(readFileSync('/etc/passwd')).digest('hex');
let passwdBefore: string;
let passwdLinks: number;

before(async () => {
  sandbox = await mkdtemp(join(tmpdir(), 'sbx-unpack-sec-'));
  passwdBefore = passwdHash();
  passwdLinks = statSync('/etc/passwd').nlink;
});

/**
 * Every attack runs twice: with the layer's files written by the thread that decompresses it, and
 * by a second thread fed through a ring (a layer alone in its pull, unpack-pool.ts).
 */
const splitPool = new UnpackPool(2);
const MODES: Array<{ name: string; options: Partial<UnpackOptions> }> = [
  { name: '', options: {} },
  { name: ' (files written by a second thread)', options: { pool: splitPool, writerThread: true } },
];
let mode = MODES[0]!;

function attack(name: string, fn: () => Promise<void>): void {
  for (const m of MODES) {
    test(name + m.name, async () => {
      mode = m;
      await fn();
    });
  }
}

after(async () => {
  await splitPool.close();
  await rm(sandbox, { recursive: true, force: true }); // first: a failed check below must not leave it behind
  assert.ok(splitPool.splitLayers >= 10, `the second thread wrote ${splitPool.splitLayers} layers`);
  assert.equal(passwdHash(), passwdBefore, '/etc/passwd changed');
  assert.equal(statSync('/etc/passwd').nlink, passwdLinks, '/etc/passwd gained a hard link');
});

interface Case {
  dir: string;
  layer: string;
  outside: string;
}

async function freshCase(): Promise<Case> {
  const dir = await mkdtemp(join(sandbox, 'case-'));
  const layer = join(dir, 'layer');
  const outside = join(dir, 'outside');
  await mkdir(layer);
  await mkdir(outside);
  await writeFile(join(outside, 'sentinel'), 'sentinel');
  return { dir, layer, outside };
}

async function unpack(c: Case, entries: LayerEntry[], limits?: UnpackLimits) {
  const tarBytes = await buildTar(entries);
  return unpackLayer(Readable.from([gzipSync(tarBytes)]), c.layer, {
    compression: 'gzip',
    diffId: null,
    fail: (detail) => new InvalidImageError('test/layer', detail),
    ...(limits ? { limits } : {}),
    ...mode.options,
  });
}

function assertHostUntouched(c: Case): void {
  assert.deepEqual(readdirSync(c.dir).sort(), ['layer', 'outside']);
  assert.deepEqual(readdirSync(c.outside), ['sentinel']);
  assert.equal(readFileSync(join(c.outside, 'sentinel'), 'utf8'), 'sentinel');
  assert.equal(passwdHash(), passwdBefore);
}

async function assertRejected(c: Case, entries: LayerEntry[], message: RegExp): Promise<void> {
  await assert.rejects(unpack(c, entries), (e: unknown) => {
    assert.ok(e instanceof InvalidImageError, `expected InvalidImageError, got ${String(e)}`);
    assert.equal(e.code, 'invalid_image');
    assert.match(e.message, message);
    return true;
  });
  assertHostUntouched(c);
}

const raw = (header: Record<string, unknown>, content?: string): LayerEntry => ({ type: 'raw', header: header as { name: string }, ...(content !== undefined ? { content } : {}) });

attack('../ in a name rejects the layer', async () => {
  const c = await freshCase();
  await assertRejected(c, [raw({ name: '../outside/pwned', type: 'file' }, 'x')], /escapes the layer/);
});

attack('deep ../ towards the host root rejects the layer', async () => {
  const c = await freshCase();
  const name = `sbx-pwned-${randomBytes(4).toString('hex')}`;
  await assertRejected(c, [raw({ name: `a/../../../../../../../../tmp/${name}`, type: 'file' }, 'x')], /escapes the layer/);
  assert.equal(existsSync(`/tmp/${name}`), false);
});

attack('absolute names land inside the layer', async () => {
  const c = await freshCase();
  const name = `sbx-abs-${randomBytes(4).toString('hex')}`;
  await unpack(c, [raw({ name: `/${name}`, type: 'file', mode: 0o644 }, 'inside')]);
  assert.equal(existsSync(`/${name}`), false);
  assert.equal(await readFile(join(c.layer, name), 'utf8'), 'inside');
  assertHostUntouched(c);
});

attack('a file through a symlinked parent (absolute host target) is rejected', async () => {
  const c = await freshCase();
  await assertRejected(
    c,
    [
      { type: 'symlink', path: 'evil', target: c.outside },
      { type: 'file', path: 'evil/pwned', content: 'x' },
    ],
    /goes through "evil", which is a symlink/,
  );
});

attack('a file through a symlinked parent (relative ../ target) is rejected', async () => {
  const c = await freshCase();
  await assertRejected(
    c,
    [
      { type: 'symlink', path: 'evil', target: '../outside' },
      { type: 'file', path: 'evil/pwned', content: 'x' },
    ],
    /which is a symlink/,
  );
});

attack('a directory replaced by a symlink cannot be written through', async () => {
  const c = await freshCase();
  await assertRejected(
    c,
    [
      { type: 'dir', path: 'd' },
      { type: 'file', path: 'd/ok', content: 'ok' },
      { type: 'symlink', path: 'd', target: c.outside },
      { type: 'file', path: 'd/pwned', content: 'x' },
    ],
    /which is a symlink/,
  );
});

attack('a symlink to / then a whiteout through it is rejected', async () => {
  const c = await freshCase();
  await assertRejected(
    c,
    [
      { type: 'symlink', path: 'root', target: '/' },
      { type: 'whiteout', path: 'root/etc/passwd' },
    ],
    /which is a symlink/,
  );
});

attack('a symlink replaced by a file gets a real file, not a write through the link', async () => {
  const c = await freshCase();
  await unpack(c, [
    { type: 'symlink', path: 'a', target: join(c.outside, 'sentinel') },
    { type: 'file', path: 'a', content: 'replaced' },
  ]);
  assert.ok(lstatSync(join(c.layer, 'a')).isFile());
  assert.equal(await readFile(join(c.layer, 'a'), 'utf8'), 'replaced');
  assertHostUntouched(c);
});

attack('a hard link to a host file (/etc/passwd) is rejected', async () => {
  const c = await freshCase();
  await assertRejected(c, [{ type: 'hardlink', path: 'pw', target: '/etc/passwd' }], /not an earlier file of this layer/);
  assert.equal(existsSync(join(c.layer, 'pw')), false);
});

attack('a hard link with ../ in its target is rejected', async () => {
  const c = await freshCase();
  await assertRejected(c, [{ type: 'hardlink', path: 'h', target: '../outside/sentinel' }], /escapes the layer/);
});

attack('a hard link through a symlink is rejected', async () => {
  const c = await freshCase();
  await assertRejected(
    c,
    [
      { type: 'symlink', path: 'l', target: c.outside },
      { type: 'hardlink', path: 'h', target: 'l/sentinel' },
    ],
    /not an earlier file of this layer/,
  );
});

attack('a hard link to a symlink pointing at a host file does not link the host file', async () => {
  const c = await freshCase();
  await unpack(c, [
    { type: 'symlink', path: 's', target: '/etc/passwd' },
    { type: 'hardlink', path: 'h', target: 's' },
  ]);
  assert.ok(lstatSync(join(c.layer, 'h')).isSymbolicLink());
  assert.equal(await readlink(join(c.layer, 'h')), '/etc/passwd');
  assert.equal(statSync('/etc/passwd').nlink, passwdLinks);
  assertHostUntouched(c);
});

attack('device nodes are skipped, FIFOs kept', async () => {
  const c = await freshCase();
  const stats = await unpack(c, [
    raw({ name: 'dev/mem2', type: 'character-device', devmajor: 1, devminor: 1, mode: 0o666 }),
    raw({ name: 'dev/sda9', type: 'block-device', devmajor: 8, devminor: 0, mode: 0o666 }),
    { type: 'fifo', path: 'run/fifo', mode: 0o600 },
  ]);
  assert.equal(existsSync(join(c.layer, 'dev/mem2')), false);
  assert.equal(existsSync(join(c.layer, 'dev/sda9')), false);
  assert.equal(stats.skipped.length, 2);
  const fifo = lstatSync(join(c.layer, 'run/fifo'));
  assert.ok(fifo.isFIFO());
  assert.equal(fifo.mode & 0o7777, 0o600);
  assertHostUntouched(c);
});

attack('whiteouts naming . or .. are rejected', async () => {
  for (const name of ['.wh..', '.wh...', 'dir/.wh..', '.wh.']) {
    const c = await freshCase();
    await assertRejected(c, [raw({ name, type: 'file' }, '')], /names no file|escapes/);
  }
});

attack('trusted.* xattrs from the layer are dropped (cannot forge overlay metadata)', async () => {
  const c = await freshCase();
  const stats = await unpack(c, [{ type: 'dir', path: 'd', xattrs: { 'trusted.overlay.opaque': 'y', 'user.note': 'kept' } }]);
  const dump = execFileSync('getfattr', ['-d', '-m', '-', '--absolute-names', join(c.layer, 'd')], { encoding: 'utf8' });
  assert.doesNotMatch(dump, /trusted\.overlay/);
  assert.match(dump, /user\.note="kept"/);
  assert.ok(stats.skipped.some((s) => s.includes('trusted.overlay.opaque')));
});

attack('names and link targets no file system takes reject the layer as the image\'s fault, not as an internal error', async () => {
  const cases: Array<[LayerEntry[], RegExp]> = [
    [[{ type: 'symlink', path: 'run', target: '' }], /symlink "run" has an empty target/],
    [[raw({ name: 'l', type: 'symlink', pax: { linkpath: 'a\u0000b' } })], /symlink "l" has a target with a NUL byte/],
    [[{ type: 'symlink', path: 'l', target: 'x'.repeat(5000) }], /symlink "l" has a target of 5000 bytes \(at most 4095\)/],
    [[{ type: 'file', path: `a/${'y'.repeat(300)}`, content: 'x' }], /has a name of 300 bytes; a file system takes at most 255/],
    [[{ type: 'file', path: `${`${'d'.repeat(200)}/`.repeat(25)}f`, content: 'x' }], /is a path of 5026 bytes; at most \d+ can be written here \(PATH_MAX\)/],
    [[{ type: 'fifo', path: 'q'.repeat(256) }], /has a name of 256 bytes/],
    [[{ type: 'file', path: 'f', content: 'x' }, { type: 'hardlink', path: 'h'.repeat(256), target: 'f' }], /has a name of 256 bytes/],
  ];
  for (const [entries, message] of cases) await assertRejected(await freshCase(), entries, message);
});

attack('extended attributes Linux refuses are skipped (too long) or reject the layer as the image\'s fault (malformed, too many)', async () => {
  const c = await freshCase();
  const stats = await unpack(c, [{ type: 'file', path: 'x', content: 'x', xattrs: { 'user.big': 'v'.repeat(70_000), [`user.${'n'.repeat(300)}`]: 'v', 'user.ok': 'kept' } }]);
  assert.equal(stats.skipped.filter((r) => /is longer than Linux takes/.test(r)).length, 2, stats.skipped.join('; '));
  assert.match(execFileSync('getfattr', ['-d', '--absolute-names', join(c.layer, 'x')], { encoding: 'utf8' }), /user\.ok="kept"/);
  // A malformed file capability: EINVAL from the kernel (applied only as root, as the workers run).
  if (process.geteuid?.() === 0) await assertRejected(await freshCase(), [{ type: 'file', path: 'x', content: 'x', xattrs: { 'security.capability': 'garbage' } }], /its extended attributes could not be set: x: Invalid argument/);
  // More than a file system keeps for one inode (ext4: one block): refused as the image's, or kept.
  const many = Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`user.k${i}`, 'v'.repeat(100)]));
  const outcome = await unpack(await freshCase(), [{ type: 'file', path: 'x', content: 'x', xattrs: many }]).then(() => null, (e: unknown) => e);
  assert.ok(outcome === null || (outcome instanceof InvalidImageError && /its extended attributes could not be set: x: /.test(outcome.message)), String(outcome));
});

attack('a layer root no job\'s root could enter (owned outside the user namespace, not searchable by others) is refused; one it can is kept', async () => {
  await assertRejected(await freshCase(), [{ type: 'dir', path: './', mode: 0o700, uid: 70000, gid: 70000 }], /its root directory \(owner 70000:70000, mode 0700\) cannot be entered by a job/);
  await assertRejected(await freshCase(), [{ type: 'dir', path: '/', mode: 0o644, uid: 70000, gid: 0 }], /its root directory \(owner 70000:0, mode 0644\)/);
  for (const [mode, uid] of [[0o755, 70000], [0o700, 0], [0o500, 1000]] as const) {
    const c = await freshCase();
    await unpack(c, [{ type: 'dir', path: './', mode, uid, gid: uid }, { type: 'file', path: 'f', content: 'x' }]);
    assert.equal(statSync(c.layer).mode & 0o7777, mode, `mode ${mode.toString(8)} owner ${uid} kept`);
  }
});

attack('a FIFO with set-id or sticky bits is kept with its permission bits (mkfifo refuses the others)', async () => {
  const c = await freshCase();
  await unpack(c, [{ type: 'fifo', path: 'f', mode: 0o4755 }, { type: 'fifo', path: 'g', mode: 0o1777 }]);
  assert.ok(lstatSync(join(c.layer, 'f')).isFIFO());
  assert.equal(lstatSync(join(c.layer, 'f')).mode & 0o7777, 0o755);
  assert.equal(lstatSync(join(c.layer, 'g')).mode & 0o7777, 0o777);
});

attack('decompressed size and entry count are capped', async () => {
  const c = await freshCase();
  const big: LayerEntry[] = [{ type: 'file', path: 'zeros', content: Buffer.alloc(4 << 20) }];
  await assert.rejects(unpack(c, big, { maxLayerBytes: 1 << 20, maxEntries: 100 }), /decompresses to more than/);
  const c2 = await freshCase();
  const many: LayerEntry[] = Array.from({ length: 50 }, (_, i) => ({ type: 'file', path: `f${i}`, content: '' }) as LayerEntry);
  await assert.rejects(unpack(c2, many, { maxLayerBytes: 1 << 30, maxEntries: 10 }), /more than 10 entries/);
});

attack('truncated gzip is rejected', async () => {
  const c = await freshCase();
  const gz = gzipSync(await buildTar([{ type: 'file', path: 'f', content: randomBytes(100_000) }]));
  await assert.rejects(
    unpackLayer(Readable.from([gz.subarray(0, gz.length / 2)]), c.layer, { compression: 'gzip', diffId: null, fail: (d) => new InvalidImageError('t', d), ...mode.options }),
  );
});
