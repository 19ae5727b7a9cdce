/**
 * Binary xattr values survive unpacking byte for byte (PAX `SCHILY.xattr.*` records are read from the
 * raw header bytes, not tar-stream's UTF-8 text), while `trusted.*` / `security.selinux` from a layer
 * are still never applied (P32). The layers are raw tar bytes written here: tar-stream's packer can
 * only write PAX values as UTF-8 strings.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { InvalidImageError } from '../../../../core/src/errors.ts';
import { unpackLayer } from './layer-unpack.ts';
import { parsePaxRecords, paxXattrs } from './pax-xattrs.ts';
import { padded, rawTarHeader } from '../../../../test/fixtures/raw-tar-header.ts';

// ---- a minimal ustar / PAX writer ----

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let length = body.length + 1;
  while (String(length).length + body.length !== length) length = String(length).length + body.length;
  return Buffer.concat([Buffer.from(String(length)), body]);
}

function paxBlock(typeflag: 'x' | 'g', name: string, records: Array<[string, Buffer]>): Buffer {
  const data = Buffer.concat(records.map(([k, v]) => paxRecord(k, v)));
  return Buffer.concat([rawTarHeader({ name, type: typeflag, size: data.length }), padded(data)]);
}

function fileEntry(name: string, content: string): Buffer {
  return Buffer.concat([rawTarHeader({ name, type: '0', size: Buffer.byteLength(content) }), padded(Buffer.from(content))]);
}

const endOfArchive = Buffer.alloc(1024);

// A vfs_cap_data v2 struct: magic_etc = VFS_CAP_REVISION_2 | EFFECTIVE, permitted = CAP_SETUID |
// CAP_NET_BIND_SERVICE | CAP_NET_RAW (0x2480: the 0x80 byte is not valid UTF-8).
const CAPABILITY = Buffer.from('0100000280240000000000000000000000000000', 'hex');
const USER_BLOB = Buffer.from([0xff, 0xfe, 0x00, 0xc3, 0x28, 0x0a, 0x3d, 0x80, 0x20, 0x31]);
const GLOBAL_BLOB = Buffer.from([0x80, 0x00, 0xc0]);

function xattrsOnDisk(path: string): Map<string, string> {
  const dump = execFileSync('getfattr', ['-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', path], { encoding: 'utf8' });
  const result = new Map<string, string>();
  for (const line of dump.split('\n')) {
    const match = /^([^#=][^=]*)=(0x[0-9a-f]*)$/.exec(line.trim());
    if (match) result.set(match[1]!, match[2]!);
  }
  return result;
}

const hex = (b: Buffer) => '0x' + b.toString('hex');

let sandbox: string;

before(async () => {
  sandbox = await mkdtemp(join(tmpdir(), 'sbx-pax-xattrs-'));
});

after(async () => {
  await rm(sandbox, { recursive: true, force: true });
});

async function unpack(tarBytes: Buffer, compression: 'gzip' | 'none' = 'gzip') {
  const layer = await mkdtemp(join(sandbox, 'layer-'));
  await mkdir(layer, { recursive: true });
  const stats = await unpackLayer(Readable.from([compression === 'gzip' ? gzipSync(tarBytes) : tarBytes]), layer, {
    compression,
    diffId: null,
    fail: (detail) => new InvalidImageError('test/layer', detail),
  });
  return { layer, stats };
}

test('parsePaxRecords reads values by byte length (binary, newlines, = and multibyte keys)', () => {
  const data = Buffer.concat([
    paxRecord('path', Buffer.from('dir/ünïcode')),
    paxRecord('SCHILY.xattr.user.blob', USER_BLOB),
    paxRecord('SCHILY.xattr.user.empty', Buffer.alloc(0)),
  ]);
  const records = parsePaxRecords(data);
  assert.deepEqual(
    records.map((r) => [r.key, r.value.toString('hex')]),
    [
      ['path', Buffer.from('dir/ünïcode').toString('hex')],
      ['SCHILY.xattr.user.blob', USER_BLOB.toString('hex')],
      ['SCHILY.xattr.user.empty', ''],
    ],
  );
  assert.deepEqual([...paxXattrs(data).keys()], ['user.blob', 'user.empty']);
  // A record whose length runs past the data or misses its newline ends the parse.
  assert.deepEqual(parsePaxRecords(Buffer.from('99 path=x\n')), []);
  assert.deepEqual(parsePaxRecords(Buffer.from('10 path=xy')), []);
});

test('binary xattrs (security.capability, non-UTF-8 user.*) are applied byte-exact; trusted.* is not', async () => {
  const tarBytes = Buffer.concat([
    paxBlock('g', 'pax_global_header', [['SCHILY.xattr.user.global', GLOBAL_BLOB]]),
    paxBlock('x', 'PaxHeaders/ping', [
      ['SCHILY.xattr.security.capability', CAPABILITY],
      ['SCHILY.xattr.user.blob', USER_BLOB],
      ['SCHILY.xattr.user.empty', Buffer.alloc(0)],
      ['SCHILY.xattr.trusted.overlay.opaque', Buffer.from('y')],
      ['SCHILY.xattr.trusted.binary', Buffer.from([0x80, 0x81, 0x00])],
      ['SCHILY.xattr.security.selinux', Buffer.from('system_u:object_r:bin_t:s0\0')],
    ]),
    fileEntry('bin/ping', 'ping'),
    fileEntry('bin/plain', 'plain'),
    endOfArchive,
  ]);
  for (const compression of ['gzip', 'none'] as const) {
    const { layer, stats } = await unpack(tarBytes, compression);
    assert.equal(await readFile(join(layer, 'bin/ping'), 'utf8'), 'ping');
    const ping = xattrsOnDisk(join(layer, 'bin/ping'));
    assert.equal(ping.get('security.capability'), hex(CAPABILITY));
    assert.equal(ping.get('user.blob'), hex(USER_BLOB));
    assert.equal(ping.get('user.empty'), '0x');
    assert.equal(ping.get('user.global'), hex(GLOBAL_BLOB));
    assert.ok(![...ping.keys()].some((name) => name.startsWith('trusted.')), `trusted.* applied: ${[...ping.keys()].join(', ')}`);
    assert.equal(ping.has('security.selinux'), false);
    // The global header applies to entries without their own PAX header too.
    assert.deepEqual([...xattrsOnDisk(join(layer, 'bin/plain'))], [['user.global', hex(GLOBAL_BLOB)]]);
    assert.ok(stats.skipped.some((s) => s.includes('trusted.overlay.opaque dropped')));
    assert.ok(stats.skipped.some((s) => s.includes('trusted.binary dropped')));
    assert.ok(stats.skipped.some((s) => s.includes('security.selinux dropped')));
    assert.ok(!stats.skipped.some((s) => s.includes('could not be decoded')));
    // getcap (when installed) reads the same capability set.
    try {
      const caps = execFileSync('getcap', [join(layer, 'bin/ping')], { encoding: 'utf8' });
      assert.match(caps, /cap_setuid,cap_net_bind_service,cap_net_raw[=+]ep/);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
});

test('a malformed SCHILY.xattr record rejects the layer instead of being garbled', async () => {
  // tar-stream accepts a record without its trailing newline; the byte-exact parser does not.
  const data = Buffer.from('30 SCHILY.xattr.user.bad=abcd!');
  const tarBytes = Buffer.concat([rawTarHeader({ name: 'PaxHeaders/f', type: 'x', size: data.length }), padded(data), fileEntry('f', 'f'), endOfArchive]);
  await assert.rejects(unpack(tarBytes), (e: unknown) => {
    assert.ok(e instanceof InvalidImageError, String(e));
    assert.match(e.message, /PAX record "SCHILY\.xattr\.user\.bad" of "f" is malformed/);
    return true;
  });
});
