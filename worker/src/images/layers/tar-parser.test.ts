/**
 * TarParser must read every archive as tar-stream 3.x (the parser it replaced) does, so a layer means
 * the same files: the same archives go through both, in whole and in pieces cut at every size, and the
 * entries (name, type, mode, ids, size, mtime, link name, xattr bytes, content) must be identical;
 * archives tar-stream refuses must be refused too.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import tar from 'tar-stream';
import { buildTar, type LayerEntry } from '../../../../test/fixtures/oci-builder.ts';
import { captureRawXattrs } from './pax-xattrs.ts';
import { TarParser, type ParsedEntry } from './tar-parser.ts';

interface Seen {
  name: string;
  type: string | null | undefined;
  mode: number | null | undefined;
  uid: number | null | undefined;
  gid: number | null | undefined;
  mtime: number | undefined;
  linkname: string | null | undefined;
  xattrs: string;
  content: string;
}

const fail = (d: string) => new Error(`rejected: ${d}`);
const digest = (parts: Buffer[]) => createHash('sha256').update(Buffer.concat(parts)).digest('hex');
const xattrText = (list: Array<{ name: string; value: Buffer }>) => list.map((x) => `${x.name}=${x.value.toString('hex')}`).join(',');

async function withTarStream(archive: Buffer): Promise<Seen[]> {
  const extract = tar.extract();
  const xattrsOf = captureRawXattrs(extract, fail);
  const seen: Seen[] = [];
  extract.on('entry', (header, stream, next) => {
    const parts: Buffer[] = [];
    stream.on('error', () => {}); // a truncated archive errors the entry stream too; the extractor reports it
    let xattrs: string;
    try {
      xattrs = xattrText(xattrsOf(header));
    } catch (e) {
      stream.resume();
      next(e as Error);
      return;
    }
    stream.on('data', (c: unknown) => void parts.push(c as Buffer));
    stream.on('end', () => {
      const type = header.type ?? null;
      seen.push({ name: header.name, type, mode: header.mode ?? null, uid: header.uid ?? null, gid: header.gid ?? null, mtime: header.mtime?.getTime(), linkname: header.linkname ?? null, xattrs, content: digest(parts) });
      next();
    });
  });
  await new Promise<void>((resolve, reject) => {
    extract.on('error', reject);
    extract.on('finish', resolve);
    extract.end(archive);
  });
  return seen;
}

/** TarParser's entry callback: each entry (with its content's digest) recorded in `seen` at its end. */
function recordInto(seen: Seen[]) {
  return (entry: ParsedEntry) => {
    const parts: Buffer[] = [];
    const record = () =>
      seen.push({ name: entry.name, type: entry.type ?? null, mode: entry.mode ?? null, uid: entry.uid ?? null, gid: entry.gid ?? null, mtime: entry.mtime?.getTime(), linkname: entry.linkname ?? null, xattrs: xattrText(entry.xattrs), content: digest(parts) });
    return { write: (c: Uint8Array) => void parts.push(Buffer.from(c)), end: record };
  };
}

function withParser(archive: Buffer, piece: number): Seen[] {
  const seen: Seen[] = [];
  const parser = new TarParser(recordInto(seen), fail);
  for (let o = 0; o < archive.length; o += piece) parser.push(archive.subarray(o, o + piece));
  parser.end();
  return seen;
}

/**
 * As withParser, but each piece is copied into one buffer that is overwritten right after push():
 * layer-decoder.ts hands TarParser views of a scratch buffer it reuses, so TarParser must keep no
 * view of a chunk past push() (a header cut between two chunks is copied).
 */
function withReusedChunks(archive: Buffer, piece: number): Seen[] {
  const seen: Seen[] = [];
  const parser = new TarParser(recordInto(seen), fail);
  const scratch = Buffer.alloc(piece);
  for (let o = 0; o < archive.length; o += piece) {
    const n = archive.copy(scratch, 0, o, o + piece);
    parser.push(scratch.subarray(0, n));
    scratch.fill(0xa5);
  }
  parser.end();
  return seen;
}

/** The same entries from both parsers (or both refuse), the archive fed whole and in pieces. */
async function compare(archive: Buffer, label: string): Promise<void> {
  let expected: Seen[] | Error;
  try {
    expected = await withTarStream(archive);
  } catch (e) {
    expected = e as Error;
  }
  for (const piece of [archive.length || 1, 1, 7, 512, 513, 4096, 65_536]) {
    if (expected instanceof Error) {
      assert.throws(() => withParser(archive, piece), Error, `${label}: tar-stream refuses it (${expected.message}), TarParser must too (pieces of ${piece})`);
    } else {
      assert.deepEqual(withParser(archive, piece), expected, `${label}: pieces of ${piece}`);
    }
  }
}

/** A raw 512-byte header with a valid checksum (fields as text, octal numbers given as strings). */
function rawHeader(f: { name: string; type: string; size?: number; mode?: string; prefix?: string; linkname?: string; magic?: 'ustar' | 'gnu' | 'none'; sizeField?: Buffer }): Buffer {
  const b = Buffer.alloc(512);
  b.write(f.name, 0, 'utf8');
  b.write(f.mode ?? '0000644\0', 100, 'latin1');
  b.write('0000000\0', 108, 'latin1');
  b.write('0000000\0', 116, 'latin1');
  if (f.sizeField) f.sizeField.copy(b, 124);
  else b.write((f.size ?? 0).toString(8).padStart(11, '0') + '\0', 124, 'latin1');
  b.write('14533241400\0', 136, 'latin1');
  b.write(f.type, 156, 'latin1');
  if (f.linkname) b.write(f.linkname, 157, 'utf8');
  if (f.magic !== 'none') {
    if (f.magic === 'gnu') b.write('ustar  \0', 257, 'latin1');
    else b.write('ustar\u000000', 257, 'latin1');
  }
  if (f.prefix) b.write(f.prefix, 345, 'utf8');
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return b;
}

const pad = (data: Buffer) => Buffer.concat([data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
const paxRecord = (key: string, value: Buffer | string) => {
  const body = Buffer.concat([Buffer.from(` ${key}=`), Buffer.from(value), Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
};
const END = Buffer.alloc(1024);

test('TarParser reads what tar-stream reads: files, dirs, links, fifos, devices, xattrs, long names', async () => {
  const long = 'd/' + 'n'.repeat(180) + '/file';
  const entries: LayerEntry[] = [
    { type: 'dir', path: 'etc', mode: 0o755 },
    { type: 'file', path: 'etc/passwd', content: 'root:x:0:0::/root:/bin/sh\n', mode: 0o644, uid: 0, gid: 0 },
    { type: 'file', path: 'bin/tool', content: Buffer.alloc(70_000, 7), mode: 0o4755, uid: 1000, gid: 1000 },
    { type: 'file', path: 'empty', content: '' },
    { type: 'symlink', path: 'bin/link', target: '../etc/passwd' },
    { type: 'hardlink', path: 'bin/hard', target: 'bin/tool' },
    { type: 'fifo', path: 'run/fifo' },
    { type: 'file', path: long, content: 'long name' },
    { type: 'file', path: 'bin/cap', content: 'x', xattrs: { 'security.capability': '\u0001\u0000\u0000\u0002', 'user.note': 'héllo' } },
    { type: 'whiteout', path: 'etc/gone' },
    { type: 'opaque', path: 'var' },
  ];
  await compare(await buildTar(entries), 'mixed layer');
});

test('TarParser agrees with tar-stream on hand-made archives: ustar prefix, GNU long names, PAX path/size/global, zero blocks, base-256 size', async () => {
  const body = Buffer.from('hello world');
  const cases: Array<[string, Buffer]> = [
    ['ustar prefix', Buffer.concat([rawHeader({ name: 'file', type: '0', size: body.length, prefix: 'some/prefix' }), pad(body), END])],
    ['gnu magic without prefix', Buffer.concat([rawHeader({ name: 'g', type: '0', size: body.length, magic: 'gnu', prefix: 'ignored' }), pad(body), END])],
    ['type 0 with a trailing slash (tar-stream keeps it a file)', Buffer.concat([rawHeader({ name: 'olddir/', type: '0' }), END])],
    [
      'GNU long name and long link',
      (() => {
        const name = Buffer.from('x/'.repeat(90) + 'target\0');
        const link = Buffer.from('y/'.repeat(80) + 'dest\0');
        return Buffer.concat([
          rawHeader({ name: '././@LongLink', type: 'L', size: name.length, magic: 'gnu' }),
          pad(name),
          rawHeader({ name: '././@LongLink', type: 'K', size: link.length, magic: 'gnu' }),
          pad(link),
          rawHeader({ name: 'short', type: '2', magic: 'gnu' }),
          END,
        ]);
      })(),
    ],
    [
      'PAX path, linkpath and size, over a global header',
      (() => {
        const global = Buffer.concat([paxRecord('comment', 'global'), paxRecord('SCHILY.xattr.user.g', Buffer.from([0xff, 0x00, 0x01]))]);
        const local = Buffer.concat([paxRecord('path', 'pax/ñame'), paxRecord('size', String(body.length)), paxRecord('SCHILY.xattr.user.l', 'v')]);
        return Buffer.concat([
          rawHeader({ name: 'pax_global_header', type: 'g', size: global.length }),
          pad(global),
          rawHeader({ name: 'PaxHeaders/x', type: 'x', size: local.length }),
          pad(local),
          rawHeader({ name: 'ignored', type: '0', size: 999 }),
          pad(body),
          rawHeader({ name: 'after', type: '0', size: 0 }),
          END,
        ]);
      })(),
    ],
    ['zero blocks between entries', Buffer.concat([rawHeader({ name: 'a', type: '0', size: body.length }), pad(body), Buffer.alloc(1024), rawHeader({ name: 'b', type: '0', size: 0 }), END])],
    [
      'base-256 size',
      (() => {
        const field = Buffer.alloc(12);
        field[0] = 0x80;
        field.writeUInt32BE(body.length, 8);
        return Buffer.concat([rawHeader({ name: 'big', type: '0', sizeField: field }), pad(body), END]);
      })(),
    ],
    ['unknown type flag', Buffer.concat([rawHeader({ name: 'sparse', type: 'S', size: body.length }), pad(body), END])],
  ];
  for (const [label, archive] of cases) {
    await compare(archive, label);
  }
});

test('TarParser refuses what tar-stream refuses: bad checksum, unknown format, truncation, huge long headers', async () => {
  const good = rawHeader({ name: 'f', type: '0', size: 600 });
  const badSum = Buffer.from(good);
  badSum[0] = 0x41;
  const huge = rawHeader({ name: 'PaxHeaders/x', type: 'x', size: 5 * 1024 * 1024 });
  const cases: Array<[string, Buffer]> = [
    ['bad checksum', Buffer.concat([badSum, Buffer.alloc(1024), END])],
    ['unknown format (no magic)', Buffer.concat([rawHeader({ name: 'f', type: '0', magic: 'none' }), END])],
    ['truncated body', Buffer.concat([good, Buffer.alloc(100)])],
    ['truncated padding', Buffer.concat([good, Buffer.alloc(600)])],
    ['partial header', Buffer.concat([rawHeader({ name: 'a', type: '0' }), Buffer.alloc(100)])],
    ['PAX header over 4 MiB', Buffer.concat([huge, Buffer.alloc(5 * 1024 * 1024), END])],
  ];
  for (const [label, archive] of cases) {
    await compare(archive, label);
  }
});

test('a directory entry with data is refused (tar-stream hung on it; tools disagree on what it means)', () => {
  const archive = Buffer.concat([rawHeader({ name: 'dir', type: '5', size: 512 }), rawHeader({ name: 'inner', type: '0', size: 0 }), END]);
  for (const piece of [archive.length, 1, 512]) assert.throws(() => withParser(archive, piece), /directory entry "dir" has 512 bytes of data/);
});

test('TarParser keeps no view of a chunk after push(): the caller may overwrite it (headers cut between chunks, PAX xattrs, long names)', async () => {
  const entries: LayerEntry[] = [
    { type: 'dir', path: 'etc', mode: 0o755 },
    { type: 'file', path: 'etc/passwd', content: 'root:x:0:0::/root:/bin/sh\n', mode: 0o644 },
    { type: 'file', path: 'd/' + 'n'.repeat(180) + '/file', content: Buffer.alloc(3000, 1) },
    { type: 'file', path: 'cap', content: 'x', xattrs: { 'user.note': 'v', 'user.other': 'w' } },
    { type: 'symlink', path: 'l', target: 'etc/passwd' },
  ];
  const archive = await buildTar(entries);
  const expected = withParser(archive, archive.length);
  for (const piece of [1, 7, 100, 512, 513, 1000, 4096]) assert.deepEqual(withReusedChunks(archive, piece), expected, `pieces of ${piece}`);
});
