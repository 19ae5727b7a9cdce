import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { InvalidImageError, SbxError } from '../../../core/src/errors.ts';
import { GROUP, PASSWD } from '../../../test/fixtures/build-images.ts';
import { buildTar, type LayerEntry } from '../../../test/fixtures/oci-builder.ts';
import { unpackLayer } from '../images/layers/layer-unpack.ts';
import { resolveUser } from './image-user.ts';

let root: string;
let hostDir: string;
let n = 0;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'sbx-user-'));
  await mkdir(join(root, 'layers/sha256'), { recursive: true });
  await mkdir(join(root, 'layer-meta'));
  hostDir = join(root, 'host');
  await mkdir(hostDir);
  await writeFile(join(hostDir, 'passwd'), 'hostonly:x:4242:4242::/:/bin/sh\n');
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Unpacks entries the way the image store does (including the opaque-dir meta beside the layer). */
async function layer(entries: LayerEntry[]): Promise<string> {
  const name = `l${n++}`;
  const dir = join(root, 'layers/sha256', name);
  await mkdir(dir);
  const stats = await unpackLayer(Readable.from([await buildTar(entries)]), dir, { compression: 'none', diffId: null, fail: (d) => new InvalidImageError('t', d) });
  await writeFile(join(root, 'layer-meta', `${name}.json`), JSON.stringify({ digest: name, unpackedBytes: 0, files: 0, opaqueDirs: stats.opaqueDirs }));
  return dir;
}

const base = () =>
  layer([
    { type: 'file', path: 'etc/passwd', content: PASSWD },
    { type: 'file', path: 'etc/group', content: GROUP },
  ]);

const table: Array<[string, { uid: number; gid: number; groups: number[]; home: string | null }]> = [
  ['', { uid: 0, gid: 0, groups: [0], home: null }],
  ['root', { uid: 0, gid: 0, groups: [0], home: '/root' }],
  ['app', { uid: 1000, gid: 1000, groups: [1000, 10], home: '/home/app' }],
  ['1000', { uid: 1000, gid: 1000, groups: [1000, 10], home: '/home/app' }],
  ['1234', { uid: 1234, gid: 0, groups: [0], home: null }],
  ['app:wheel', { uid: 1000, gid: 10, groups: [10], home: '/home/app' }],
  ['app:55', { uid: 1000, gid: 55, groups: [55], home: '/home/app' }],
  ['1000:1000', { uid: 1000, gid: 1000, groups: [1000], home: '/home/app' }],
  ['4000:4001', { uid: 4000, gid: 4001, groups: [4001], home: null }],
  ['nobody', { uid: 65534, gid: 65534, groups: [65534], home: '/nonexistent' }],
];

test('resolves USER forms through the image files', async () => {
  const layers = [await base()];
  for (const [user, expected] of table) assert.deepEqual(await resolveUser(layers, user), expected, user);
});

function assertInvalid(user: string, message: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof SbxError, String(e));
    assert.equal(e.code, 'invalid_request');
    assert.match(e.message, message);
    assert.ok(e.message.includes(JSON.stringify(user)));
    return true;
  };
}

test('unknown names are invalid_request', async () => {
  const layers = [await base()];
  await assert.rejects(resolveUser(layers, 'nosuch'), assertInvalid('nosuch', /no user named "nosuch"/));
  await assert.rejects(resolveUser(layers, 'app:nosuch'), assertInvalid('app:nosuch', /no group named "nosuch"/));
  await assert.rejects(resolveUser(layers, ':wheel'), assertInvalid(':wheel', /no user/));
});

test('the top-most layer wins and whiteouts delete files of lower layers', async () => {
  const lower = await base();
  const upper = await layer([{ type: 'file', path: 'etc/passwd', content: 'app:x:2000:2000::/:/bin/sh\n' }]);
  assert.deepEqual(await resolveUser([lower, upper], 'app'), { uid: 2000, gid: 2000, groups: [2000, 10], home: '/' });
  const deleted = await layer([{ type: 'whiteout', path: 'etc/passwd' }]);
  await assert.rejects(resolveUser([lower, deleted], 'app'), /no user named "app"/);
  assert.equal((await resolveUser([lower, deleted], '1000')).uid, 1000);
  const opaque = await layer([{ type: 'dir', path: 'etc' }, { type: 'opaque', path: 'etc' }, { type: 'file', path: 'etc/other', content: '' }]);
  await assert.rejects(resolveUser([lower, opaque], 'app'), /no user named "app"/);
  const plainDir = await layer([{ type: 'file', path: 'etc/other', content: '' }]);
  assert.equal((await resolveUser([lower, plainDir], 'app')).uid, 1000, 'a non-opaque /etc merges with lower layers');
});

test('symlinks resolve inside the image, never to host files', async () => {
  const lower = await base();
  const inImage = await layer([
    { type: 'file', path: 'usr/lib/passwd', content: 'moved:x:3000:3000::/:/bin/sh\n' },
    { type: 'symlink', path: 'etc/passwd', target: '../usr/lib/passwd' },
  ]);
  assert.equal((await resolveUser([lower, inImage], 'moved')).uid, 3000);

  for (const target of [join(hostDir, 'passwd'), `../../../../../../../../..${join(hostDir, 'passwd')}`]) {
    const evil = await layer([{ type: 'symlink', path: 'etc/passwd', target }]);
    await assert.rejects(resolveUser([lower, evil], 'hostonly'), /no user named "hostonly"/);
  }
  // /etc itself a symlink to the host's /etc: the host's users (daemon, ...) must stay invisible.
  const evilDir = await layer([{ type: 'symlink', path: 'etc', target: '/etc' }]);
  await assert.rejects(resolveUser([evilDir], 'daemon'), /no user named "daemon"/);
  // A symlink loop ends as "not found", not a hang.
  const loop = await layer([
    { type: 'symlink', path: 'etc/passwd', target: '/etc/loop' },
    { type: 'symlink', path: 'etc/loop', target: '/etc/passwd' },
  ]);
  await assert.rejects(resolveUser([loop], 'app'), /no user named "app"/);
});

test('a uid or gid past the ids a job\'s user namespace maps is refused naming it; a supplementary group past them is left out', async () => {
  const layers = [
    await layer([
      { type: 'file', path: 'etc/passwd', content: 'far:x:70000:100::/:/bin/sh\nneargid:x:2000:70001::/:/bin/sh\nnear:x:2001:2001::/:/bin/sh\n' },
      { type: 'file', path: 'etc/group', content: 'near:x:2001:\nfargroup:x:70002:near\nusers:x:100:near\n' },
    ]),
  ];
  await assert.rejects(resolveUser(layers, 'far'), assertInvalid('far', /its uid 70000 is outside 0-65535, the ids a job's user namespace maps/));
  await assert.rejects(resolveUser(layers, '99999'), assertInvalid('99999', /its uid 99999 is outside 0-65535/));
  await assert.rejects(resolveUser(layers, 'neargid'), assertInvalid('neargid', /its gid 70001 is outside 0-65535/));
  await assert.rejects(resolveUser(layers, 'near:fargroup'), assertInvalid('near:fargroup', /its gid 70002 is outside/));
  assert.deepEqual(await resolveUser(layers, 'near'), { uid: 2001, gid: 2001, groups: [2001, 100], home: '/' }, 'fargroup (70002) left out');
});

test('a user in more groups than a job may have is refused naming the count (the launcher\'s own error before)', async () => {
  const groups = Array.from({ length: 70 }, (_, i) => `g${i}:x:${3000 + i}:many`).join('\n');
  const layers = [await layer([
    { type: 'file', path: 'etc/passwd', content: 'many:x:2500:2500::/home/many:/bin/sh\n' },
    { type: 'file', path: 'etc/group', content: `${groups}\n` },
  ])];
  await assert.rejects(resolveUser(layers, 'many'), assertInvalid('many', /is in 71 groups in the image's \/etc\/group; a job's user may be in at most 64/));
});
