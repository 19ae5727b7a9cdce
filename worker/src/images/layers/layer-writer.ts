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
 * - xattrs are applied byte-exact, except that `trusted.*` and `security.selinux` from the layer are
 *   always dropped, and other `security.*` ones (file capabilities) when not running as root.
 *
 * It is synchronous on purpose: it runs inside an unpack worker thread (layer-unpack-worker.ts),
 * where blocking calls cost less than libuv round trips and do not hold up the main event loop.
 */
import {
  chmodSync,
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  futimesSync,
  lchownSync,
  linkSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readlinkSync,
  rmdirSync,
  statfsSync,
  symlinkSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { JOB_ID_RANGE } from '../../../../core/src/launch-bounds.ts';
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
  /**
   * The entry's xattrs with byte-exact values (from the raw PAX records, see pax-xattrs.ts). When
   * present they replace the `SCHILY.xattr.*` entries of `pax`, whose values tar-stream decoded as UTF-8.
   */
  xattrs?: Array<{ name: string; value: Buffer }> | undefined;
}

export interface LayerWriterOptions {
  /** Builds the error that rejects the layer; `detail` says which entry and why. */
  fail: (detail: string) => Error;
  /** Apply the entries' uid/gid (needs root). Default: when running as root. */
  chown?: boolean;
  /** Asked before each entry and while finishing: an error stops the layer there (an abort). */
  stopped?: () => Error | null;
}

/** Receives a regular file's content; end() applies its metadata and closes it. */
export interface FileSink {
  write(chunk: Uint8Array): void;
  end(): void;
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

/** Linux's limits on a name in a directory, and on a path or symlink target (with its NUL). */
const NAME_MAX = 255;
const PATH_MAX = 4096;
/** Linux's limits on an extended attribute's name and value (XATTR_NAME_MAX, XATTR_SIZE_MAX). */
const XATTR_NAME_MAX = 255;
const XATTR_SIZE_MAX = 65536;
/** The largest uid or gid: 2^32 - 1 is (uid_t)-1, "no change" to chown. */
const MAX_ID = 0xfffffffe;
/** An entry name in a message: quoted, cut to 100 characters. */
const shown = (name: string): string => JSON.stringify(name.length > 100 ? `${name.slice(0, 100)}…` : name);

/**
 * Whether a job's root (uid 0 and gid 0 of its user namespace, P9) may search a directory of these
 * owner and mode: its capabilities apply only where both ids are mapped (0 to JOB_ID_RANGE - 1);
 * else only the permission bits do. Every layer's root is looked up through when the job's root
 * file system is entered, so a layer whose root fails this could never start a job.
 */
function enterableByJobRoot(m: Meta): boolean {
  if (m.uid < JOB_ID_RANGE && m.gid < JOB_ID_RANGE) return true;
  return (m.mode & 0o001) !== 0 || (m.uid === 0 && (m.mode & 0o100) !== 0) || (m.gid === 0 && (m.mode & 0o010) !== 0);
}

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE_MARKER = '.wh..wh..opq';
const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
const DROPPED_XATTR = /^(trusted\.|security\.selinux$)/;
const EPOCH = new Date(0);
/** security.* xattrs (file capabilities) need CAP_SETFCAP / CAP_SYS_ADMIN: only root applies them. */
const PRIVILEGED = process.geteuid?.() === 0;

export class LayerWriter {
  /**
   * What this layer wrote at each path. Every ancestor of a path here is a 'dir' here: a replaced
   * directory takes its whole subtree out (forget), so a known parent needs no look further up.
   */
  private readonly nodes = new Map<string, NodeKind>([['', 'dir']]);
  /** The paths of `nodes` in each directory, so that replacing a directory drops its subtree alone. */
  private readonly children = new Map<string, Set<string>>();
  private readonly dirMeta = new Map<string, Meta>();
  private readonly fifos = new Map<string, Meta>();
  private readonly opaque = new Set<string>();
  private readonly xattrs = new Map<string, Array<{ name: string; value: Buffer }>>();
  private openFd: number | null = null;
  private readonly chownEntries: boolean;
  readonly stats: LayerWriteStats = { entries: 0, files: 0, bytes: 0, skipped: [], opaqueDirs: [] };

  constructor(
    private readonly root: string,
    private readonly opts: LayerWriterOptions,
  ) {
    this.chownEntries = opts.chown ?? process.getuid?.() === 0;
  }

  /** Writes one entry. For a regular file it returns the sink its content must go to. */
  add(header: TarHeader): FileSink | null {
    if (this.openFd !== null) throw new Error('LayerWriter.add() before the previous file sink ended');
    this.checkStopped();
    this.stats.entries++;
    const rel = this.clean(header.name);
    const base = rel.slice(rel.lastIndexOf('/') + 1);
    if (base.startsWith(WHITEOUT_PREFIX)) return this.addWhiteout(rel, base);
    switch (header.type ?? 'file') {
      case 'file':
      case 'contiguous-file':
        return this.addFile(rel, header);
      case 'directory':
        this.addDirectory(rel, header);
        return null;
      case 'symlink':
        this.addSymlink(rel, header);
        return null;
      case 'link':
        this.addHardlink(rel, header);
        return null;
      case 'fifo':
        this.addFifo(rel, header);
        return null;
      case 'character-device':
      case 'block-device':
        this.stats.skipped.push(`${rel}: device nodes are not extracted`);
        return null;
      default:
        this.stats.skipped.push(`${rel}: unsupported tar entry type ${String(header.type)}`);
        return null;
    }
  }

  /** Creates whiteouts, FIFOs, xattrs and directory metadata, once every entry is written. */
  finish(): LayerWriteStats {
    const whiteouts = [...this.nodes].filter(([, kind]) => kind === 'whiteout').map(([rel]) => this.abs(rel));
    if (whiteouts.length) makeWhiteouts(whiteouts);
    if (this.fifos.size) {
      makeFifos([...this.fifos].map(([rel, meta]) => ({ path: this.abs(rel), mode: meta.mode })));
      for (const [rel, meta] of this.fifos) this.applyLinkMeta(rel, meta);
    }
    const xattrs = [...this.xattrs].flatMap(([rel, list]) => list.map((x) => ({ path: this.abs(rel), ...x })));
    for (const rel of this.opaque) xattrs.push({ path: this.abs(rel), name: OVERLAY_OPAQUE_XATTR, value: Buffer.from('y') });
    if (xattrs.length) this.applyXattrs(xattrs);
    // The layer root comes from mkdtemp (0700); without a `./` entry it must be an ordinary 0755 dir.
    if (!this.dirMeta.has('')) this.dirMeta.set('', { mode: 0o755, uid: 0, gid: 0, mtime: EPOCH });
    // Deepest first, so that setting a parent's times is not undone by work on a child.
    const dirs = [...this.dirMeta].sort(([a], [b]) => b.length - a.length);
    let done = 0;
    for (const [rel, meta] of dirs) {
      if (++done % 256 === 0) this.checkStopped();
      this.applyDirMeta(rel, meta);
    }
    this.stats.opaqueDirs = [...this.opaque].sort();
    return this.stats;
  }

  private checkStopped(): void {
    const reason = this.opts.stopped?.();
    if (reason) throw reason;
  }

  /** Closes a file left open by a failure; the caller then removes the directory. */
  abort(): void {
    if (this.openFd !== null) closeSync(this.openFd);
    this.openFd = null;
  }

  // ---- entry kinds ----

  private addFile(rel: string, header: TarHeader): FileSink {
    this.prepare(rel, 'file');
    this.recordXattrs(rel, header);
    this.stats.files++;
    this.stats.bytes += header.size ?? 0;
    const meta = this.meta(rel, header, 0o644);
    const fd = openSync(this.abs(rel), CREATE_FLAGS, 0o600);
    this.openFd = fd;
    this.setNode(rel, 'file');
    return {
      write: (chunk) => {
        for (let off = 0; off < chunk.length; ) off += writeSync(fd, chunk, off);
      },
      end: () => {
        try {
          if (this.chownEntries && (meta.uid !== 0 || meta.gid !== 0)) fchownSync(fd, meta.uid, meta.gid);
          fchmodSync(fd, meta.mode);
          futimesSync(fd, meta.mtime, meta.mtime);
        } finally {
          this.openFd = null;
          closeSync(fd);
        }
      },
    };
  }

  private addDirectory(rel: string, header: TarHeader): void {
    this.prepare(rel, 'dir');
    if (this.nodes.get(rel) !== 'dir') {
      mkdirSync(this.abs(rel), { mode: 0o700 });
      this.setNode(rel, 'dir');
    }
    this.recordXattrs(rel, header);
    const meta = this.meta(rel, header, 0o755);
    if (rel === '' && !enterableByJobRoot(meta)) {
      throw this.opts.fail(`its root directory (owner ${meta.uid}:${meta.gid}, mode ${meta.mode.toString(8).padStart(4, '0')}) cannot be entered by a job: its owner is outside 0-${JOB_ID_RANGE - 1}, the ids a job's user namespace maps, and others may not search it`);
    }
    this.dirMeta.set(rel, meta);
  }

  private addSymlink(rel: string, header: TarHeader): void {
    if (rel === '') throw this.opts.fail('a symlink entry names the layer root');
    const target = header.linkname ?? '';
    const problem = target === '' ? 'an empty target' : target.includes('\0') ? 'a target with a NUL byte'
      : Buffer.byteLength(target) >= PATH_MAX ? `a target of ${Buffer.byteLength(target)} bytes (at most ${PATH_MAX - 1})` : null;
    if (problem) throw this.opts.fail(`symlink ${shown(rel)} has ${problem}`);
    this.prepare(rel, 'symlink');
    symlinkSync(target, this.abs(rel));
    this.setNode(rel, 'symlink');
    this.applyLinkMeta(rel, this.meta(rel, header, 0o777));
  }

  private addHardlink(rel: string, header: TarHeader): void {
    const target = this.clean(header.linkname ?? '');
    const kind = this.nodes.get(target);
    if (kind === undefined || kind === 'dir' || kind === 'whiteout') {
      throw this.opts.fail(`hard link ${shown(rel)} points to ${shown(header.linkname ?? '')}, which is not an earlier file of this layer`);
    }
    if (target === rel) return;
    this.prepare(rel, kind);
    if (kind === 'fifo' || kind === 'symlink') {
      // A FIFO exists only once finish() runs; a hard link to a symlink is rare: copy the entry instead.
      return kind === 'fifo' ? this.addFifo(rel, header) : this.copySymlink(target, rel);
    }
    linkSync(this.abs(target), this.abs(rel));
    this.setNode(rel, kind);
  }

  private copySymlink(target: string, rel: string): void {
    symlinkSync(readlinkSync(this.abs(target)), this.abs(rel));
    this.setNode(rel, 'symlink');
  }

  private addFifo(rel: string, header: TarHeader): void {
    this.prepare(rel, 'fifo');
    this.setNode(rel, 'fifo');
    this.fifos.set(rel, this.meta(rel, header, 0o644));
  }

  /** `.wh.<name>` hides <name> of lower layers; `.wh..wh..opq` hides all lower content of its directory. */
  private addWhiteout(rel: string, base: string): null {
    const dir = rel.slice(0, Math.max(0, rel.length - base.length - 1));
    if (base === OPAQUE_MARKER) {
      this.ensureDirectory(dir);
      this.opaque.add(dir);
      return null;
    }
    const name = base.slice(WHITEOUT_PREFIX.length);
    if (name === '' || name === '.' || name === '..') throw this.opts.fail(`whiteout ${shown(rel)} names no file`);
    if (name.startsWith(WHITEOUT_PREFIX)) {
      this.stats.skipped.push(`${rel}: aufs metadata`);
      return null;
    }
    const target = dir === '' ? name : `${dir}/${name}`;
    this.prepare(target, 'whiteout');
    this.setNode(target, 'whiteout');
    return null;
  }

  // ---- paths ----

  /**
   * The entry name relative to the layer root; rejects any `..`, and names no file system takes (a
   * component over NAME_MAX, a path that with the layer's own directory passes PATH_MAX). '' is the
   * root itself.
   */
  private clean(name: string): string {
    const parts: string[] = [];
    for (const part of name.split('/')) {
      if (part === '' || part === '.') continue;
      if (part === '..') throw this.opts.fail(`entry ${shown(name)} escapes the layer with ..`);
      if (part.includes('\0')) throw this.opts.fail(`entry ${shown(name)} contains a NUL byte`);
      const bytes = Buffer.byteLength(part);
      if (bytes > NAME_MAX) throw this.opts.fail(`entry ${shown(name)} has a name of ${bytes} bytes; a file system takes at most ${NAME_MAX}`);
      parts.push(part);
    }
    const rel = parts.join('/');
    const room = PATH_MAX - 1 - Buffer.byteLength(this.root) - 1;
    if (Buffer.byteLength(rel) > room) throw this.opts.fail(`entry ${shown(name)} is a path of ${Buffer.byteLength(rel)} bytes; at most ${room} can be written here (PATH_MAX)`);
    return rel;
  }

  private abs(rel: string): string {
    return rel === '' ? this.root : join(this.root, rel);
  }

  /**
   * Makes `rel` ready to be created as `kind`: its parents are real directories of this layer
   * (created when missing) and whatever this layer had at `rel` is removed, unless both are dirs.
   */
  private prepare(rel: string, kind: NodeKind): void {
    if (rel === '' && kind !== 'dir') throw this.opts.fail(`an entry of type ${kind} names the layer root`);
    this.ensureParents(rel);
    const existing = this.nodes.get(rel);
    if (existing === undefined || (existing === 'dir' && kind === 'dir')) return;
    // Deepest first (children before their directory), one call each: rmSync's recursion overflows
    // the stack on a tree a couple of thousand directories deep (RangeError, an `internal` end).
    const removed = this.forget(rel);
    for (let i = removed.length - 1; i >= 0; i--) {
      const [path, kind] = removed[i]!;
      // Whiteouts and FIFOs are made by finish(): nothing on disk yet.
      if (kind === 'dir') rmdirSync(this.abs(path));
      else if (kind !== 'whiteout' && kind !== 'fifo') unlinkSync(this.abs(path));
    }
  }

  private ensureParents(rel: string): void {
    const slash = rel.lastIndexOf('/');
    if (slash !== -1) this.ensureDirectory(rel.slice(0, slash));
  }

  /**
   * `rel` must be a directory of this layer; creates it and its missing parents. A directory known
   * here has every parent known (see `nodes`): one look for the usual entry, not one per component.
   */
  private ensureDirectory(rel: string): void {
    const kind = this.nodes.get(rel);
    if (kind === 'dir') return;
    if (kind !== undefined) throw this.opts.fail(`entry path goes through ${shown(rel)}, which is a ${kind} in this layer, not a directory`);
    // Up to the deepest ancestor this layer has: a directory (those above it are too), or the one
    // non-directory on the way (none below it can exist), as a walk down from the root would find it.
    const missing = [rel];
    for (let slash = rel.lastIndexOf('/'); slash !== -1; slash = rel.lastIndexOf('/', slash - 1)) {
      const parent = rel.slice(0, slash);
      const above = this.nodes.get(parent);
      if (above === 'dir') break;
      if (above !== undefined) throw this.opts.fail(`entry path goes through ${shown(parent)}, which is a ${above} in this layer, not a directory`);
      missing.push(parent);
    }
    for (let i = missing.length - 1; i >= 0; i--) {
      mkdirSync(this.abs(missing[i]!), { mode: 0o755 });
      this.setNode(missing[i]!, 'dir');
    }
  }

  /** Records what this layer has at `rel` (its parent is a directory of `nodes`). */
  private setNode(rel: string, kind: NodeKind): void {
    if (!this.nodes.has(rel)) {
      const parent = rel.slice(0, Math.max(0, rel.lastIndexOf('/')));
      let siblings = this.children.get(parent);
      if (siblings === undefined) this.children.set(parent, (siblings = new Set()));
      siblings.add(rel);
    }
    this.nodes.set(rel, kind);
  }

  /**
   * Drops `rel` and everything under it from the bookkeeping (it is being replaced): a file costs
   * the same whatever the layer holds, a directory what its subtree holds.
   */
  private forget(rel: string): Array<[string, NodeKind]> {
    this.children.get(rel.slice(0, Math.max(0, rel.lastIndexOf('/'))))?.delete(rel);
    /** What was dropped, each directory before what was in it. */
    const removed: Array<[string, NodeKind]> = [];
    const pending = [rel];
    for (let key = pending.pop(); key !== undefined; key = pending.pop()) {
      const kind = this.nodes.get(key);
      if (kind !== undefined) removed.push([key, kind]);
      this.nodes.delete(key);
      this.dirMeta.delete(key);
      this.fifos.delete(key);
      this.xattrs.delete(key);
      this.opaque.delete(key);
      const under = this.children.get(key);
      if (under === undefined) continue;
      this.children.delete(key);
      for (const child of under) pending.push(child);
    }
    return removed;
  }

  // ---- writes and metadata ----

  private applyLinkMeta(rel: string, meta: Meta): void {
    const path = this.abs(rel);
    if (this.chownEntries) lchownSync(path, meta.uid, meta.gid);
    lutimesSync(path, meta.mtime, meta.mtime);
  }

  /** Directories only: every path here is a directory this layer created, never a symlink. */
  private applyDirMeta(rel: string, meta: Meta): void {
    const path = this.abs(rel);
    if (this.chownEntries) lchownSync(path, meta.uid, meta.gid);
    chmodSync(path, meta.mode);
    lutimesSync(path, meta.mtime, meta.mtime);
  }

  private meta(rel: string, header: TarHeader, defaultMode: number): Meta {
    return {
      mode: (header.mode ?? defaultMode) & 0o7777,
      uid: this.owner(rel, 'owner', header.uid),
      gid: this.owner(rel, 'group', header.gid),
      mtime: header.mtime && !Number.isNaN(header.mtime.getTime()) ? header.mtime : EPOCH,
    };
  }

  /**
   * An entry's owner or group: an id Linux has, 0 to 2^32 - 2. Base-256 tar fields hold up to 2^56
   * and negative values, which chown refuses (Node: ERR_OUT_OF_RANGE); and 2^32 - 1 is (uid_t)-1,
   * which chown reads as "leave it", so the file would silently stay root's. Each is the image's fault.
   */
  private owner(rel: string, what: 'owner' | 'group', id: number | undefined): number {
    if (id === undefined) return 0;
    if (Number.isSafeInteger(id) && id >= 0 && id <= MAX_ID) return id;
    throw this.opts.fail(`entry ${shown(rel === '' ? '.' : rel)} has ${what} id ${String(id)}; ids are 0-${MAX_ID}`);
  }

  /**
   * Values the kernel refuses for what they hold (a malformed security.capability: EINVAL; E2BIG,
   * ERANGE) or for how many a file has (ENOSPC: more than its file system keeps for one inode) are
   * the image's. Anything else (a file system without xattrs: ENOTSUP; no setfattr) is this host's.
   */
  private applyXattrs(xattrs: Array<{ path: string; name: string; value: Buffer }>): void {
    try {
      setXattrs(xattrs);
    } catch (e) {
      // ENOSPC is also a full disk: then this host's (evicted for and tried again), not the image's.
      if ((e as NodeJS.ErrnoException).code === 'ENOSPC' && diskNearlyFull(this.root)) throw e;
      const message = String((e as Error).message);
      if (!/: (Invalid argument|No space left on device|Argument list too long|Numerical result out of range)$/m.test(message)) throw e;
      // Paths relative to the layer, its root as `.`: the host directory it is written in is not the image's.
      const why = message.replace(/^setfattr failed: (setfattr: )?/, '').replaceAll(`${this.root}/`, '').replaceAll(`${this.root}:`, '.:');
      throw this.opts.fail(`its extended attributes could not be set: ${why}`);
    }
  }

  private recordXattrs(rel: string, header: TarHeader): void {
    const list: Array<{ name: string; value: Buffer }> = [];
    for (const { name, value } of header.xattrs ?? this.textXattrs(rel, header)) {
      if (DROPPED_XATTR.test(name)) {
        this.stats.skipped.push(`${rel}: xattr ${name} dropped`);
        continue;
      }
      if (name === '' || name.includes('\0') || !name.includes('.')) {
        this.stats.skipped.push(`${rel}: xattr ${JSON.stringify(name)} has an invalid name`);
        continue;
      }
      if (Buffer.byteLength(name) > XATTR_NAME_MAX || value.length > XATTR_SIZE_MAX) {
        this.stats.skipped.push(`${rel}: xattr ${shown(name)} is longer than Linux takes (a name of at most ${XATTR_NAME_MAX} bytes, a value of at most ${XATTR_SIZE_MAX})`);
        continue;
      }
      if (name.startsWith('security.') && !PRIVILEGED) {
        // File capabilities and other security.* attributes need privileges this process lacks.
        this.stats.skipped.push(`${rel}: xattr ${name} needs root, not applied`);
        continue;
      }
      list.push({ name, value });
    }
    if (list.length) this.xattrs.set(rel, list);
    else this.xattrs.delete(rel);
  }

  /** `SCHILY.xattr.*` from tar-stream's UTF-8 decoded PAX records, for headers without raw `xattrs`. */
  private textXattrs(rel: string, header: TarHeader): Array<{ name: string; value: Buffer }> {
    const list: Array<{ name: string; value: Buffer }> = [];
    for (const [key, value] of Object.entries(header.pax ?? {})) {
      if (!key.startsWith('SCHILY.xattr.')) continue;
      const name = key.slice('SCHILY.xattr.'.length);
      if (value.includes('\uFFFD') && !DROPPED_XATTR.test(name)) {
        // Decoded as UTF-8, a binary value arrives mangled: writing it would set a wrong value.
        this.stats.skipped.push(`${rel}: xattr ${name} has a binary value that could not be decoded`);
        continue;
      }
      list.push({ name, value: Buffer.from(value, 'utf8') });
    }
    return list;
  }
}

/** Whether the file system of `dir` has (almost) no room left: under 1 MiB or 16 inodes free. */
function diskNearlyFull(dir: string): boolean {
  try {
    const s = statfsSync(dir);
    return s.bavail * s.bsize < 1024 * 1024 || s.ffree < 16;
  } catch {
    return false;
  }
}
