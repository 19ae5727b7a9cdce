/**
 * Writes one layer's tar entries into a fresh directory that nothing else writes to, so that no
 * entry can land outside it (P32):
 *
 * - names are cleaned (leading `/` stripped, `.` dropped); any `..` component rejects the layer;
 * - every parent must be a real directory this layer created (an in-memory map of what was written
 *   is authoritative, since only we write here): a symlink or file in a parent path rejects the
 *   layer, so nothing is ever written through a symlink;
 * - files are created with O_CREAT|O_EXCL|O_NOFOLLOW; metadata uses lchown/lutimes/fchmod only;
 * - hard links must name an earlier non-directory entry of this layer;
 * - block and character devices are skipped; FIFOs are kept;
 * - OCI whiteouts become overlayfs whiteouts (char 0:0) and opaque markers become
 *   `trusted.overlay.opaque=y`, so the directory can serve as an overlay lowerdir;
 * - `trusted.*` and `security.selinux` xattrs from the layer are dropped.
 *
 * Regular files are written several at a time (the libuv pool does the syscalls); anything that
 * could depend on an in-flight write (links, replacements, directories) waits for them first.
 */
import { constants } from 'node:fs';
import { chmod, lchown, link, lutimes, mkdir, open, readlink, rm, symlink, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { makeFifos, makeWhiteouts, OVERLAY_OPAQUE_XATTR, setXattrs } from './special-files.ts';

export interface TarHeader {
  name: string;
  type: string | null | undefined;
  mode?: number | undefined;
  uid?: number | undefined;
  gid?: number | undefined;
  size?: number | undefined;
  mtime?: Date | undefined;
  linkname?: string | null | undefined;
  pax?: Record<string, string> | undefined;
}

export interface LayerWriterOptions {
  /** Builds the error that rejects the layer; `detail` says which entry and why. */
  fail: (detail: string) => Error;
  /** Apply the entries' uid/gid (needs root). Default: when running as root. */
  chown?: boolean;
  /** Regular files written concurrently. */
  concurrency?: number;
}

export interface LayerWriteStats {
  entries: number;
  files: number;
  /** Sum of regular file sizes. */
  bytes: number;
  /** Entries deliberately not written (devices, aufs metadata), with the reason. */
  skipped: string[];
  /** Directories marked opaque (relative paths, '' = the layer root). */
  opaqueDirs: string[];
}

type NodeKind = 'dir' | 'file' | 'symlink' | 'fifo' | 'whiteout';

interface Meta {
  mode: number;
  uid: number;
  gid: number;
  mtime: Date;
}

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE_MARKER = '.wh..wh..opq';
const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
/** Files up to this size are buffered and written concurrently; larger ones are streamed inline. */
const BUFFERED_FILE_LIMIT = 1 << 20;
const DROPPED_XATTR = /^(trusted\.|security\.selinux$)/;
const EPOCH = new Date(0);

export class LayerWriter {
  private readonly nodes = new Map<string, NodeKind>([['', 'dir']]);
  private readonly dirMeta = new Map<string, Meta>();
  private readonly fifos = new Map<string, Meta>();
  private readonly opaque = new Set<string>();
  private readonly xattrs = new Map<string, Array<{ name: string; value: Buffer }>>();
  private readonly inflight = new Set<Promise<void>>();
  private failure: unknown = null;
  private readonly chownEntries: boolean;
  private readonly concurrency: number;
  readonly stats: LayerWriteStats = { entries: 0, files: 0, bytes: 0, skipped: [], opaqueDirs: [] };

  constructor(
    private readonly root: string,
    private readonly opts: LayerWriterOptions,
  ) {
    this.chownEntries = opts.chown ?? process.getuid?.() === 0;
    this.concurrency = opts.concurrency ?? 16;
  }

  /** Writes one entry; `body` is consumed for regular files only. */
  async add(header: TarHeader, body: AsyncIterable<Buffer>): Promise<void> {
    this.throwIfFailed();
    this.stats.entries++;
    const rel = this.clean(header.name);
    const base = rel.slice(rel.lastIndexOf('/') + 1);
    if (base.startsWith(WHITEOUT_PREFIX)) return this.addWhiteout(rel, base);
    switch (header.type ?? 'file') {
      case 'file':
      case 'contiguous-file':
        return this.addFile(rel, header, body);
      case 'directory':
        return this.addDirectory(rel, header);
      case 'symlink':
        return this.addSymlink(rel, header);
      case 'link':
        return this.addHardlink(rel, header);
      case 'fifo':
        return this.addFifo(rel, header);
      case 'character-device':
      case 'block-device':
        this.stats.skipped.push(`${rel}: device nodes are not extracted`);
        return;
      default:
        this.stats.skipped.push(`${rel}: unsupported tar entry type ${String(header.type)}`);
    }
  }

  /** Waits for writes, then creates whiteouts, FIFOs, xattrs and directory metadata. */
  async finish(): Promise<LayerWriteStats> {
    await this.drain();
    const whiteouts = [...this.nodes].filter(([, kind]) => kind === 'whiteout').map(([rel]) => this.abs(rel));
    if (whiteouts.length) await makeWhiteouts(whiteouts);
    if (this.fifos.size) {
      await makeFifos([...this.fifos].map(([rel, meta]) => ({ path: this.abs(rel), mode: meta.mode })));
      for (const [rel, meta] of this.fifos) await this.applyLinkMeta(rel, meta);
    }
    const xattrs = [...this.xattrs].flatMap(([rel, list]) => list.map((x) => ({ path: this.abs(rel), ...x })));
    for (const rel of this.opaque) xattrs.push({ path: this.abs(rel), name: OVERLAY_OPAQUE_XATTR, value: Buffer.from('y') });
    if (xattrs.length) await setXattrs(xattrs);
    // The layer root comes from mkdtemp (0700); without a `./` entry it must be an ordinary 0755 dir.
    if (!this.dirMeta.has('')) this.dirMeta.set('', { mode: 0o755, uid: 0, gid: 0, mtime: EPOCH });
    // Deepest first, so that setting a parent's times is not undone by work on a child.
    const dirs = [...this.dirMeta].sort(([a], [b]) => b.length - a.length);
    for (const [rel, meta] of dirs) await this.applyDirMeta(rel, meta);
    this.stats.opaqueDirs = [...this.opaque].sort();
    return this.stats;
  }

  /** Stops accepting work and waits for in-flight writes (after a failure elsewhere). */
  async abort(): Promise<void> {
    await Promise.allSettled([...this.inflight]);
  }

  // ---- entry kinds ----

  private async addFile(rel: string, header: TarHeader, body: AsyncIterable<Buffer>): Promise<void> {
    const size = header.size ?? 0;
    await this.prepare(rel, 'file');
    this.recordXattrs(rel, header);
    this.stats.files++;
    this.stats.bytes += size;
    const meta = this.meta(header, 0o644);
    if (size > BUFFERED_FILE_LIMIT) {
      await this.drain();
      await this.writeFile(rel, body, meta);
      return;
    }
    const chunks: Buffer[] = [];
    for await (const chunk of body) chunks.push(chunk);
    if (this.inflight.size >= this.concurrency) await Promise.race(this.inflight);
    this.throwIfFailed();
    this.track(this.writeFile(rel, chunks, meta));
  }

  private async addDirectory(rel: string, header: TarHeader): Promise<void> {
    await this.prepare(rel, 'dir');
    if (this.nodes.get(rel) !== 'dir') {
      await mkdir(this.abs(rel), { mode: 0o700 });
      this.nodes.set(rel, 'dir');
    }
    this.recordXattrs(rel, header);
    this.dirMeta.set(rel, this.meta(header, 0o755));
  }

  private async addSymlink(rel: string, header: TarHeader): Promise<void> {
    if (rel === '') throw this.opts.fail('a symlink entry names the layer root');
    await this.prepare(rel, 'symlink');
    await symlink(header.linkname ?? '', this.abs(rel));
    this.nodes.set(rel, 'symlink');
    await this.applyLinkMeta(rel, this.meta(header, 0o777));
  }

  private async addHardlink(rel: string, header: TarHeader): Promise<void> {
    const target = this.clean(header.linkname ?? '');
    const kind = this.nodes.get(target);
    if (kind === undefined || kind === 'dir' || kind === 'whiteout') {
      throw this.opts.fail(`hard link ${rel} points to ${JSON.stringify(header.linkname)}, which is not an earlier file of this layer`);
    }
    if (target === rel) return;
    await this.prepare(rel, kind);
    if (kind === 'fifo' || kind === 'symlink') {
      // A FIFO exists only once finish() runs; a hard link to a symlink is rare: copy the entry instead.
      return kind === 'fifo' ? this.addFifo(rel, header) : this.copySymlink(target, rel);
    }
    await this.drain();
    await link(this.abs(target), this.abs(rel));
    this.nodes.set(rel, kind);
  }

  private async copySymlink(target: string, rel: string): Promise<void> {
    await symlink(await readlink(this.abs(target)), this.abs(rel));
    this.nodes.set(rel, 'symlink');
  }

  private async addFifo(rel: string, header: TarHeader): Promise<void> {
    await this.prepare(rel, 'fifo');
    this.nodes.set(rel, 'fifo');
    this.fifos.set(rel, this.meta(header, 0o644));
  }

  /** `.wh.<name>` hides <name> of lower layers; `.wh..wh..opq` hides all lower content of its directory. */
  private async addWhiteout(rel: string, base: string): Promise<void> {
    const dir = rel.slice(0, Math.max(0, rel.length - base.length - 1));
    if (base === OPAQUE_MARKER) {
      await this.ensureDirectory(dir);
      this.opaque.add(dir);
      return;
    }
    const name = base.slice(WHITEOUT_PREFIX.length);
    if (name === '' || name === '.' || name === '..') throw this.opts.fail(`whiteout ${JSON.stringify(rel)} names no file`);
    if (name.startsWith(WHITEOUT_PREFIX)) {
      this.stats.skipped.push(`${rel}: aufs metadata`);
      return;
    }
    const target = dir === '' ? name : `${dir}/${name}`;
    await this.prepare(target, 'whiteout');
    this.nodes.set(target, 'whiteout');
  }

  // ---- paths ----

  /** The entry name relative to the layer root; rejects any `..`. '' is the root itself. */
  private clean(name: string): string {
    const parts: string[] = [];
    for (const part of name.split('/')) {
      if (part === '' || part === '.') continue;
      if (part === '..') throw this.opts.fail(`entry ${JSON.stringify(name)} escapes the layer with ..`);
      if (part.includes('\0')) throw this.opts.fail(`entry ${JSON.stringify(name)} contains a NUL byte`);
      parts.push(part);
    }
    return parts.join('/');
  }

  private abs(rel: string): string {
    return rel === '' ? this.root : join(this.root, rel);
  }

  /**
   * Makes `rel` ready to be created as `kind`: its parents are real directories of this layer
   * (created when missing) and whatever this layer had at `rel` is removed, unless both are dirs.
   */
  private async prepare(rel: string, kind: NodeKind): Promise<void> {
    if (rel === '' && kind !== 'dir') throw this.opts.fail(`an entry of type ${kind} names the layer root`);
    await this.ensureParents(rel);
    const existing = this.nodes.get(rel);
    if (existing === undefined || (existing === 'dir' && kind === 'dir')) return;
    await this.drain();
    this.forget(rel);
    if (existing === 'dir') await rm(this.abs(rel), { recursive: true, force: true });
    else if (existing !== 'whiteout' && existing !== 'fifo') await unlink(this.abs(rel));
  }

  private async ensureParents(rel: string): Promise<void> {
    let index = rel.indexOf('/');
    while (index !== -1) {
      await this.ensureDirectory(rel.slice(0, index));
      index = rel.indexOf('/', index + 1);
    }
  }

  /** `rel` (whose parents are checked) must be a directory of this layer; creates it if missing. */
  private async ensureDirectory(rel: string): Promise<void> {
    const kind = this.nodes.get(rel);
    if (kind === 'dir') return;
    if (kind !== undefined) throw this.opts.fail(`entry path goes through ${JSON.stringify(rel)}, which is a ${kind} in this layer, not a directory`);
    await this.ensureParents(rel);
    await mkdir(this.abs(rel), { mode: 0o755 });
    this.nodes.set(rel, 'dir');
  }

  /** Drops `rel` and everything under it from the bookkeeping (it is being replaced). */
  private forget(rel: string): void {
    const prefix = rel + '/';
    for (const map of [this.nodes, this.dirMeta, this.fifos, this.xattrs] as Array<Map<string, unknown>>) {
      for (const key of map.keys()) if (key === rel || key.startsWith(prefix)) map.delete(key);
    }
    for (const key of this.opaque) if (key === rel || key.startsWith(prefix)) this.opaque.delete(key);
  }

  // ---- writes and metadata ----

  private async writeFile(rel: string, body: Iterable<Buffer> | AsyncIterable<Buffer>, meta: Meta): Promise<void> {
    this.nodes.set(rel, 'file');
    const file = await open(this.abs(rel), CREATE_FLAGS, 0o600);
    try {
      for await (const chunk of body) await file.write(chunk);
      if (this.chownEntries && (meta.uid !== 0 || meta.gid !== 0)) await file.chown(meta.uid, meta.gid);
      await file.chmod(meta.mode);
      await file.utimes(meta.mtime, meta.mtime);
    } finally {
      await file.close();
    }
  }

  private async applyLinkMeta(rel: string, meta: Meta): Promise<void> {
    const path = this.abs(rel);
    if (this.chownEntries) await lchown(path, meta.uid, meta.gid);
    await lutimes(path, meta.mtime, meta.mtime);
  }

  /** Directories only: every path here is a directory this layer created, never a symlink. */
  private async applyDirMeta(rel: string, meta: Meta): Promise<void> {
    const path = this.abs(rel);
    if (this.chownEntries) await lchown(path, meta.uid, meta.gid);
    await chmod(path, meta.mode);
    await lutimes(path, meta.mtime, meta.mtime);
  }

  private meta(header: TarHeader, defaultMode: number): Meta {
    return {
      mode: (header.mode ?? defaultMode) & 0o7777,
      uid: header.uid ?? 0,
      gid: header.gid ?? 0,
      mtime: header.mtime && !Number.isNaN(header.mtime.getTime()) ? header.mtime : EPOCH,
    };
  }

  private recordXattrs(rel: string, header: TarHeader): void {
    if (!header.pax) return;
    const list: Array<{ name: string; value: Buffer }> = [];
    for (const [key, value] of Object.entries(header.pax)) {
      if (!key.startsWith('SCHILY.xattr.')) continue;
      const name = key.slice('SCHILY.xattr.'.length);
      if (DROPPED_XATTR.test(name)) {
        this.stats.skipped.push(`${rel}: xattr ${name} dropped`);
        continue;
      }
      list.push({ name, value: Buffer.from(value, 'utf8') });
    }
    if (list.length) this.xattrs.set(rel, list);
    else this.xattrs.delete(rel);
  }

  // ---- concurrency ----

  private track(op: Promise<void>): void {
    const tracked: Promise<void> = op.then(
      () => {
        this.inflight.delete(tracked);
      },
      (e: unknown) => {
        this.inflight.delete(tracked);
        this.failure ??= e;
      },
    );
    this.inflight.add(tracked);
  }

  private async drain(): Promise<void> {
    while (this.inflight.size) await Promise.all([...this.inflight]);
    this.throwIfFailed();
  }

  private throwIfFailed(): void {
    if (this.failure !== null) throw this.failure;
  }
}
