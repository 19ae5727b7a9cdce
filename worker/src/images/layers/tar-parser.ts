/**
 * A synchronous, push-fed tar reader for layer extraction: `push(chunk)` parses what it can and
 * hands each entry to `onEntry` (whose returned sink gets the entry's bytes as views of the chunks,
 * no copies), `end()` checks the archive is complete. No stream or object per entry: with thousands
 * of small files the per-entry stream machinery of tar-stream cost more CPU than the parsing.
 *
 * It reads archives exactly as tar-stream 3.x (which it replaces here) does, so a layer means the same
 * files as before: ustar (with prefix) and GNU headers, others rejected; checksum checked, all-zero
 * blocks skipped; base-256 numbers; GNU long names (L) and long link names (K); PAX `x` headers
 * (`path`, `linkpath`, `size`) merged over the last PAX `g` header; headers larger than 4 MiB
 * rejected; unknown type flags give type null; a trailing partial block or entry is an error. One
 * difference: a directory entry with a non-zero size (tar-stream hung on it) is refused. `SCHILY.xattr.*` values are read byte-exact from the raw PAX
 * records (pax-xattrs.ts), global ones overridden by the entry's own.
 */
import { paxXattrs, SCHILY_XATTR, type RawXattr } from './pax-xattrs.ts';
import type { FileSink, TarHeader } from './layer-writer.ts';

const BLOCK = 512;
const MAX_HEADER_SIZE = 4 * 1024 * 1024;
const EMPTY_CHECKSUM = 8 * 32;

/** What onEntry receives: a header as LayerWriter takes it (xattrs byte-exact). */
export type ParsedEntry = TarHeader & { xattrs: RawXattr[] };

type LongKind = 'gnu-long-path' | 'gnu-long-link-path' | 'pax-global-header' | 'pax-header';

function typeName(flag: number): string | null {
  switch (flag) {
    case 0:
      return 'file';
    case 1:
      return 'link';
    case 2:
      return 'symlink';
    case 3:
      return 'character-device';
    case 4:
      return 'block-device';
    case 5:
      return 'directory';
    case 6:
      return 'fifo';
    case 7:
      return 'contiguous-file';
    case 72:
      return 'pax-header';
    case 55:
      return 'pax-global-header';
    case 27:
      return 'gnu-long-link-path';
    case 28:
    case 30:
      return 'gnu-long-path';
  }
  return null;
}

function indexOfByte(block: Uint8Array, byte: number, from: number, end: number): number {
  for (let i = from; i < end; i++) if (block[i] === byte) return i;
  return end;
}

function decodeStr(block: Buffer, offset: number, length: number): string {
  return block.toString('utf8', offset, indexOfByte(block, 0, offset, offset + length));
}

function parse256(field: Uint8Array): number | null {
  let positive: boolean;
  if (field[0] === 0x80) positive = true;
  else if (field[0] === 0xff) positive = false;
  else return null;
  let sum = 0;
  for (let i = field.length - 1, power = 1; i > 0; i--, power *= 256) sum += (positive ? field[i]! : 0xff - field[i]!) * power;
  return positive ? sum : -sum;
}

function decodeOct(block: Buffer, offset: number, length: number): number | null {
  const field = block.subarray(offset, offset + length);
  if (field[0]! & 0x80) return parse256(field);
  let start = 0;
  while (start < field.length && field[start] === 0x20) start++;
  const end = indexOfByte(field, 0x20, start, field.length);
  while (start < end && field[start] === 0) start++;
  if (end === start) return 0;
  return parseInt(field.toString('latin1', start, end), 8);
}

function checksum(block: Buffer): number {
  let sum = EMPTY_CHECKSUM;
  for (let i = 0; i < 148; i++) sum += block[i]!;
  for (let i = 156; i < BLOCK; i++) sum += block[i]!;
  return sum;
}

const USTAR = Buffer.from('ustar\0', 'latin1');
const GNU = Buffer.from('ustar ', 'latin1');
const GNU_VERSION = Buffer.from(' \0', 'latin1');

interface RawHeader {
  name: string;
  type: string | null;
  mode: number | null;
  uid: number | null;
  gid: number | null;
  size: number | null;
  mtime: Date;
  linkname: string | null;
}

/** One header block; null for an all-zero (end of archive) block. Throws on a bad checksum or format. */
function decodeHeader(block: Buffer): RawHeader | null {
  const flag = block[156] === 0 ? 0 : block[156]! - 0x30;
  let name = decodeStr(block, 0, 100);
  const sum = checksum(block);
  if (sum === EMPTY_CHECKSUM) return null;
  if (sum !== decodeOct(block, 148, 8)) throw new Error('Invalid tar header. Maybe the tar is corrupted or it needs to be gunzipped?');
  if (block.compare(USTAR, 0, 6, 257, 263) === 0) {
    if (block[345]) name = decodeStr(block, 345, 155) + '/' + name;
  } else if (!(block.compare(GNU, 0, 6, 257, 263) === 0 && block.compare(GNU_VERSION, 0, 2, 263, 265) === 0)) {
    throw new Error('Invalid tar header: unknown format.');
  }
  // tar-stream turns a type-0 entry named `dir/` into type flag 5 only after it has named the type:
  // such an entry stays a 'file' (LayerWriter strips the slash). Kept so that layers mean the same.
  const mtime = decodeOct(block, 136, 12);
  return {
    name,
    type: typeName(flag),
    mode: decodeOct(block, 100, 8),
    uid: decodeOct(block, 108, 8),
    gid: decodeOct(block, 116, 8),
    size: decodeOct(block, 124, 12),
    mtime: new Date(1000 * (mtime ?? NaN)),
    linkname: block[157] === 0 ? null : decodeStr(block, 157, 100),
  };
}

/** PAX records as text, with tar-stream's exact (lenient) rules: stops at a record it cannot read. */
function decodePaxText(data: Buffer): Record<string, string> {
  const result: Record<string, string> = {};
  let buf = data;
  while (buf.length) {
    let i = 0;
    while (i < buf.length && buf[i] !== 0x20) i++;
    const len = parseInt(buf.toString('utf8', 0, i), 10);
    if (!len) return result;
    const record = buf.toString('utf8', i + 1, len - 1);
    const eq = record.indexOf('=');
    if (eq === -1) return result;
    result[record.slice(0, eq)] = record.slice(eq + 1);
    buf = buf.subarray(len);
  }
  return result;
}

export class TarParser {
  /** Partial header / long-header bytes waiting for the rest. */
  private staged: Buffer[] = [];
  private stagedBytes = 0;
  /** Body bytes of the current entry still to come, then padding to skip. */
  private bodyLeft = 0;
  private padLeft = 0;
  private sink: FileSink | null = null;
  /** A long header (L, K, x, g) whose data is being collected. */
  private long: { kind: LongKind; size: number } | null = null;
  private gnuLongPath: string | null = null;
  private gnuLongLinkPath: string | null = null;
  private paxGlobal: Record<string, string> | null = null;
  private pax: Record<string, string> | null = null;
  private globalXattrs = new Map<string, Buffer>();
  private localXattrs: Map<string, Buffer> | null = null;

  constructor(
    /** Called once per entry; a sink receives the entry's bytes, then end(). */
    private readonly onEntry: (entry: ParsedEntry) => FileSink | null,
    /** Builds the error for a layer that is not a valid archive. */
    private readonly fail: (detail: string) => Error,
  ) {}

  /**
   * Parses `chunk`. Nothing keeps a view of it after this returns (entry bytes go to the sink during
   * the call, a header cut between chunks is copied), so the caller may reuse its memory.
   */
  push(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.bodyLeft > 0) {
        const n = Math.min(this.bodyLeft, chunk.length - offset);
        this.sink?.write(chunk.subarray(offset, offset + n));
        this.bodyLeft -= n;
        offset += n;
        if (this.bodyLeft === 0) this.endEntry();
        continue;
      }
      if (this.padLeft > 0) {
        const n = Math.min(this.padLeft, chunk.length - offset);
        this.padLeft -= n;
        offset += n;
        continue;
      }
      const want = this.long ? this.long.size : BLOCK;
      const available = chunk.length - offset;
      let block: Buffer;
      if (this.stagedBytes === 0 && available >= want) {
        block = chunk.subarray(offset, offset + want);
        offset += want;
      } else {
        const n = Math.min(want - this.stagedBytes, available);
        // Copied: the caller may reuse the chunk's memory once push() returns (layer-decoder.ts does).
        this.staged.push(Buffer.from(chunk.subarray(offset, offset + n)));
        this.stagedBytes += n;
        offset += n;
        if (this.stagedBytes < want) continue;
        block = Buffer.concat(this.staged, this.stagedBytes);
        this.staged = [];
        this.stagedBytes = 0;
      }
      if (this.long) this.takeLongHeader(block);
      else this.takeHeader(block);
    }
  }

  /** The archive ended: anything unfinished (a partial block or entry) is an error. */
  end(): void {
    if (this.bodyLeft > 0 || this.padLeft > 0 || this.stagedBytes > 0 || this.long) throw this.fail('a layer is not a valid tar archive (Unexpected end of data)');
  }

  private takeLongHeader(data: Buffer): void {
    const kind = this.long!.kind;
    this.padLeft = padding(this.long!.size);
    this.long = null;
    switch (kind) {
      case 'gnu-long-path':
        this.gnuLongPath = decodeStr(data, 0, data.length);
        return;
      case 'gnu-long-link-path':
        this.gnuLongLinkPath = decodeStr(data, 0, data.length);
        return;
      case 'pax-global-header':
        this.paxGlobal = decodePaxText(data);
        this.globalXattrs = paxXattrs(data);
        return;
      case 'pax-header':
        this.pax = this.paxGlobal === null ? decodePaxText(data) : { ...this.paxGlobal, ...decodePaxText(data) };
        this.localXattrs = paxXattrs(data);
        return;
    }
  }

  private takeHeader(block: Buffer): void {
    let header: RawHeader | null;
    try {
      header = decodeHeader(block);
    } catch (e) {
      throw this.fail(`a layer is not a valid tar archive (${(e as Error).message})`);
    }
    if (header === null) return;
    switch (header.type) {
      case 'gnu-long-path':
      case 'gnu-long-link-path':
      case 'pax-global-header':
      case 'pax-header':
        if (typeof header.size !== 'number' || !(header.size >= 0)) throw this.fail('a layer is not a valid tar archive (Invalid header)');
        if (header.size > MAX_HEADER_SIZE) throw this.fail('a layer is not a valid tar archive (Header exceeds max size)');
        // An empty long header says nothing (tar-stream never decodes one either).
        if (header.size > 0) this.long = { kind: header.type, size: header.size };
        return;
    }
    const pax = this.applyLongHeaders(header);
    if (typeof header.size !== 'number' || !(header.size >= 0)) throw this.fail('a layer is not a valid tar archive (Invalid header)');
    // tar-stream never finished such an archive (it waited for the directory's data forever), and
    // tools disagree on whether that data is skipped or read as headers: ambiguous, so refused.
    if (header.type === 'directory' && header.size > 0) throw this.fail(`directory entry ${JSON.stringify(header.name)} has ${header.size} bytes of data`);
    const entry: ParsedEntry = {
      name: header.name,
      type: header.type,
      mode: header.mode ?? undefined,
      uid: header.uid ?? undefined,
      gid: header.gid ?? undefined,
      size: header.size!,
      mtime: header.mtime,
      linkname: header.linkname,
      pax: pax ?? undefined,
      xattrs: this.takeXattrs(header.name, pax),
    };
    this.sink = this.onEntry(entry);
    if (header.size === 0) {
      this.endEntry(false);
      return;
    }
    this.bodyLeft = header.size!;
  }

  private endEntry(pad = true): void {
    const sink = this.sink;
    this.sink = null;
    if (pad) this.padLeft = padding(this.bodyLength);
    sink?.end();
  }

  private bodyLength = 0;

  private applyLongHeaders(header: RawHeader): Record<string, string> | null {
    if (this.gnuLongPath) {
      header.name = this.gnuLongPath;
      this.gnuLongPath = null;
    }
    if (this.gnuLongLinkPath) {
      header.linkname = this.gnuLongLinkPath;
      this.gnuLongLinkPath = null;
    }
    const pax = this.pax;
    if (pax) {
      if (pax.path) header.name = pax.path;
      if (pax.linkpath) header.linkname = pax.linkpath;
      if (pax.size) header.size = parseInt(pax.size, 10);
      this.pax = null;
    }
    this.bodyLength = header.size ?? 0;
    return pax;
  }

  /** The entry's xattrs, byte-exact; a `SCHILY.xattr.*` text record the raw parse did not read rejects the layer. */
  private takeXattrs(name: string, pax: Record<string, string> | null): RawXattr[] {
    const merged = new Map(this.globalXattrs);
    for (const [key, value] of this.localXattrs ?? []) merged.set(key, value);
    this.localXattrs = null;
    for (const key of Object.keys(pax ?? {})) {
      if (key.startsWith(SCHILY_XATTR) && !merged.has(key.slice(SCHILY_XATTR.length))) {
        throw this.fail(`the PAX record ${JSON.stringify(key)} of ${JSON.stringify(name)} is malformed`);
      }
    }
    return [...merged].map(([n, value]) => ({ name: n, value }));
  }
}

function padding(size: number): number {
  const rest = size & 511;
  return rest && BLOCK - rest;
}
