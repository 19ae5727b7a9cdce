/**
 * Byte-exact PAX extended attributes. tar-stream decodes PAX records as UTF-8 text, which garbles
 * binary xattr values (`SCHILY.xattr.security.capability` holds a vfs_cap_data struct). This module
 * parses the raw PAX header data itself and hooks a tar-stream extractor so that every entry gets
 * its `SCHILY.xattr.*` values as the exact bytes of the archive.
 */
import type tar from 'tar-stream';

export const SCHILY_XATTR = 'SCHILY.xattr.';

export interface PaxRecord {
  key: string;
  /** The value's exact bytes (a copy). */
  value: Buffer;
}

export interface RawXattr {
  name: string;
  value: Buffer;
}

/**
 * Parses PAX extended header data: records `<len> <key>=<value>\n` where `<len>` is the decimal byte
 * length of the whole record. Stops at the first malformed record (as tar-stream does).
 */
export function parsePaxRecords(data: Uint8Array): PaxRecord[] {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const records: PaxRecord[] = [];
  let offset = 0;
  while (offset < buf.length) {
    const space = buf.indexOf(0x20, offset);
    if (space === -1 || space === offset || space - offset > 12) break;
    const lengthText = buf.toString('latin1', offset, space);
    if (!/^[0-9]+$/.test(lengthText)) break;
    const length = Number(lengthText);
    const end = offset + length;
    if (end <= space + 1 || end > buf.length || buf[end - 1] !== 0x0a) break;
    const record = buf.subarray(space + 1, end - 1);
    const eq = record.indexOf(0x3d);
    if (eq <= 0) break;
    records.push({ key: record.toString('utf8', 0, eq), value: Buffer.from(record.subarray(eq + 1)) });
    offset = end;
  }
  return records;
}

/** The `SCHILY.xattr.*` records of PAX header data, by xattr name (a later record wins). */
export function paxXattrs(data: Uint8Array): Map<string, Buffer> {
  const xattrs = new Map<string, Buffer>();
  for (const { key, value } of parsePaxRecords(data)) {
    if (key.startsWith(SCHILY_XATTR)) xattrs.set(key.slice(SCHILY_XATTR.length), value);
  }
  return xattrs;
}

/** What tar-stream 3.x keeps while it reads an archive (private; checked at hook time). */
interface ExtractInternals {
  _header: { type?: string | null } | null;
  _decodeLongHeader?: (buf: Buffer) => void;
}

/**
 * Hooks `extract` to read the raw bytes of every PAX header (local `x` and global `g`). Call the
 * returned function from the 'entry' listener, once per entry: it gives that entry's xattrs (global
 * ones overridden by the entry's own), byte-exact, and throws if tar-stream decoded `SCHILY.xattr.*`
 * records the hook did not see or could not parse (`fail` builds that error): a malformed record or a
 * tar-stream change must never silently drop or garble xattrs.
 */
export function captureRawXattrs(extract: tar.Extract, fail: (detail: string) => Error): (header: tar.Header) => RawXattr[] {
  const internals = extract as unknown as ExtractInternals;
  const original = internals._decodeLongHeader;
  if (typeof original !== 'function') throw new Error('tar-stream has no _decodeLongHeader(): cannot read PAX xattrs byte-exactly');
  let global = new Map<string, Buffer>();
  let local: Map<string, Buffer> | null = null;
  internals._decodeLongHeader = function (this: ExtractInternals, buf: Buffer): void {
    original.call(this, buf);
    const type = this._header?.type;
    if (type === 'pax-header') local = paxXattrs(buf);
    else if (type === 'pax-global-header') global = paxXattrs(buf);
  };
  return (header) => {
    const merged = new Map(global);
    for (const [name, value] of local ?? []) merged.set(name, value);
    local = null;
    for (const key of Object.keys(header.pax ?? {})) {
      if (key.startsWith(SCHILY_XATTR) && !merged.has(key.slice(SCHILY_XATTR.length))) {
        throw fail(`the PAX record ${JSON.stringify(key)} of ${JSON.stringify(header.name)} is malformed`);
      }
    }
    return [...merged].map(([name, value]) => ({ name, value }));
  };
}
