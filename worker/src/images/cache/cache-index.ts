/**
 * The on-disk image cache and its in-memory index. Layout under `root`:
 *
 *   layers/sha256/<hex>/        an unpacked layer (an overlay lowerdir), keyed by its blob digest
 *   layer-meta/<hex>.json       { digest, unpackedBytes, files } written before the layer is renamed in
 *   images/<hex>.json           ImageRecord of a platform manifest: its layers, config and size
 *   manifests/<refkey>.json     RefRecord: canonical reference → manifest digest, last use
 *   blobs/sha256/<hex>          raw manifests and configs as fetched (verified)
 *   tmp/<pid>-<rand>/           this process's work in progress; a dead process's is removed at open
 *   locks/<hex>.lock            cross-process layer download locks (file-lock.ts)
 *   inuse/<hex>/<pid>-<token>   holders of an image, across processes (in-use-markers.ts)
 *
 * Only root may reach any of it (cached layers keep setuid bits and file capabilities): the root and
 * the directories listed above are created or tightened to 0700 at open, temp dirs are 0700 (mkdtemp),
 * records 0600. Layer directories keep their image's modes, out of reach under layers/sha256 (0700).
 *
 * Everything is written to a temp path and renamed into place. The in-memory maps make a cache hit a
 * few Map lookups; they are loaded once at open and refreshed from disk on a miss (another process
 * may have pulled meanwhile).
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { ImageRuntimeConfig } from '../../launch/image-config.ts';
import { processGone, SELF_START } from '../../process-alive.ts';
import { ensurePrivateDir, PRIVATE_DIR_MODE } from '../../state-dir.ts';

/** The cache's own directories under its root (all 0700). */
const CACHE_DIRS = ['layers', 'layers/sha256', 'layer-meta', 'images', 'manifests', 'blobs', 'blobs/sha256', 'locks', 'inuse', 'tmp'];

export interface LayerRecord {
  digest: string;
  mediaType: string;
  /** Compressed size, from the manifest. */
  size: number;
}

export interface ImageRecord {
  manifestDigest: string;
  configDigest: string;
  layers: LayerRecord[];
  config: ImageRuntimeConfig;
  platform: string;
  /** As LayerMeta.privateTo, for the image's config (its Env, Entrypoint, Cmd…): who may use it without fetching it. */
  privateTo?: string[];
}

export interface RefRecord {
  reference: string;
  /** What the reference resolved to in the registry (an index digest for multi-arch images). */
  digest: string;
  /** The platform manifest in use (= digest for single-platform images). */
  manifestDigest: string;
  pulledAt: string;
  lastUsedAt: string;
  /**
   * Set when the pull used a job's own credentials: a hash of them. Only a request presenting the
   * same credentials may then use this cached reference; anyone else must pull (and so prove
   * access) themselves. Unset for anonymous pulls and the operator's configured credentials.
   */
  privateTo?: string;
}

export interface LayerMeta {
  digest: string;
  unpackedBytes: number;
  files: number;
  /** Directories carrying trusted.overlay.opaque (Node cannot read xattrs; image-user.ts reads this). */
  opaqueDirs: string[];
  /**
   * The sha256 of the layer's tar as unpacked (what an image config's diff_ids must name), so that
   * each pull checks it against its own config, also when another pull fetched the layer. Absent in
   * layers cached before it was recorded.
   */
  diffId?: string;
  /**
   * Set while every pull that fetched this layer's bytes used a job's own credentials: their hashes
   * (as RefRecord.privateTo). Another pull may use the cached layer only once it has fetched the
   * blob itself from its own registry (and so shown that it has the bytes, not only their digest);
   * then its viewer is added, or the field goes for an anonymous pull. Unset: fetched anonymously or
   * with the operator's configured credentials at least once.
   */
  privateTo?: string[];
}

/** Whether a pull by `viewer` (undefined: anonymous) may use the cached layer or image config without fetching it. */
export function visibleTo(cached: { privateTo?: string[] }, viewer: string | undefined): boolean {
  return cached.privateTo === undefined || (viewer !== undefined && cached.privateTo.includes(viewer));
}

/** Who may use a layer fetched by both: anyone if either may, else both lists. */
function widened(a: string[] | undefined, b: string[] | undefined): string[] | undefined {
  return a === undefined || b === undefined ? undefined : [...new Set([...a, ...b])];
}

/** `viewer` as a `privateTo` list: undefined (everyone's) for an anonymous pull. */
const viewers = (viewer: string | undefined): string[] | undefined => (viewer === undefined ? undefined : [viewer]);

/** `entry` with `privateTo` set to `to`, or without the field when everyone may use it. */
function withPrivateTo<T extends { privateTo?: string[] }>(entry: T, to: string[] | undefined): T {
  const { privateTo: _, ...rest } = entry;
  return (to === undefined ? rest : { ...rest, privateTo: to }) as T;
}

/** Where the meta of the layer unpacked at `layerDir` lives (layerDir = <root>/layers/sha256/<hex>). */
export function layerMetaPath(layerDir: string): string {
  return join(layerDir, '..', '..', '..', 'layer-meta', `${basename(layerDir)}.json`);
}

const hex = (digest: string) => digest.slice('sha256:'.length);

/** A file name for a reference: readable prefix + hash (references contain '/', ':' and '@'). */
export function refKey(canonical: string): string {
  const readable = canonical.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 80);
  return `${readable}-${createHash('sha256').update(canonical).digest('hex').slice(0, 16)}`;
}

async function readJsonDir<T>(dir: string): Promise<T[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const out: T[] = [];
  for (const name of names) {
    if (!name.endsWith('.json')) continue;
    try {
      out.push(JSON.parse(await readFile(join(dir, name), 'utf8')) as T);
    } catch {
      // a torn or foreign file: ignore, it will be rewritten by the next pull
    }
  }
  return out;
}

export class CacheIndex {
  private readonly refs = new Map<string, RefRecord>();
  private readonly images = new Map<string, ImageRecord>();
  private readonly layers = new Map<string, LayerMeta>();
  /** References whose use touch() recorded since the last persistRefs(). */
  private readonly touched = new Set<string>();

  private readonly tmpRoot: string;

  private constructor(readonly root: string) {
    // Named after this process and its start time: a restarted worker that is pid 1 again (in a
    // container) sweeps its predecessor's (sweepDeadTemps).
    this.tmpRoot = join(root, 'tmp', `${process.pid}-${SELF_START ?? 'x'}-${randomBytes(4).toString('hex')}`);
  }

  static async open(root: string): Promise<CacheIndex> {
    const index = new CacheIndex(root);
    await ensurePrivateDir(root);
    for (const dir of CACHE_DIRS) await ensurePrivateDir(join(root, dir));
    await index.sweepDeadTemps();
    await mkdir(index.tmpRoot, { mode: PRIVATE_DIR_MODE });
    await index.load();
    return index;
  }

  /**
   * Removes temp dirs of processes that no longer run (a crash mid-unpack leaves one): named
   * <pid>-<start time>-<random>, or <pid>-<random> by an older version (the pid alone tells then).
   */
  private async sweepDeadTemps(): Promise<void> {
    for (const name of await readdir(join(this.root, 'tmp'))) {
      const parts = name.split('-');
      const start = parts.length >= 3 && /^\d+$/.test(parts[1]!) ? parts[1]! : null;
      if (processGone(Number(parts[0]), start)) await rm(join(this.root, 'tmp', name), { recursive: true, force: true });
    }
  }

  /** Removes this process's temp dir. */
  async close(): Promise<void> {
    await rm(this.tmpRoot, { recursive: true, force: true });
  }

  /** The download lock of a layer; `scope` (a registry) gives each source its own lock. */
  lockPath(digest: string, scope?: string): string {
    const suffix = scope === undefined ? '' : `.${createHash('sha256').update(scope).digest('hex').slice(0, 16)}`;
    return join(this.root, 'locks', `${hex(digest)}${suffix}.lock`);
  }

  /** (Re)reads every record from disk. Layers count only when both their dir and meta exist. */
  async load(): Promise<void> {
    for (const ref of await readJsonDir<RefRecord>(join(this.root, 'manifests'))) {
      // Uses are recorded in memory (touch) and written at close: keep the later one.
      const known = this.refs.get(ref.reference);
      if (known && known.lastUsedAt > ref.lastUsedAt) ref.lastUsedAt = known.lastUsedAt;
      this.refs.set(ref.reference, ref);
    }
    for (const image of await readJsonDir<ImageRecord>(join(this.root, 'images'))) this.images.set(image.manifestDigest, image);
    const dirs = new Set(await readdir(join(this.root, 'layers/sha256')).catch(() => [] as string[]));
    for (const meta of await readJsonDir<LayerMeta>(join(this.root, 'layer-meta'))) {
      if (dirs.has(hex(meta.digest))) this.layers.set(meta.digest, meta);
    }
  }

  ref(canonical: string): RefRecord | undefined {
    return this.refs.get(canonical);
  }

  allRefs(): RefRecord[] {
    return [...this.refs.values()];
  }

  /** Whether any reference resolves to the image `manifestDigest`. */
  referenced(manifestDigest: string): boolean {
    for (const ref of this.refs.values()) if (ref.manifestDigest === manifestDigest) return true;
    return false;
  }

  /** Whether an image record is left that no reference resolves to (a tag moved to another digest). */
  hasUnreferencedImages(): boolean {
    const referenced = new Set<string>();
    for (const ref of this.refs.values()) referenced.add(ref.manifestDigest);
    for (const digest of this.images.keys()) if (!referenced.has(digest)) return true;
    return false;
  }

  image(manifestDigest: string): ImageRecord | undefined {
    return this.images.get(manifestDigest);
  }

  allImages(): ImageRecord[] {
    return [...this.images.values()];
  }

  layer(digest: string): LayerMeta | undefined {
    return this.layers.get(digest);
  }

  allLayers(): LayerMeta[] {
    return [...this.layers.values()];
  }

  /** Total unpacked bytes of the listed layers. */
  layerBytes(): number {
    let sum = 0;
    for (const l of this.layers.values()) sum += l.unpackedBytes;
    return sum;
  }

  /** The image record when it and all its layers are present. */
  completeImage(manifestDigest: string): ImageRecord | undefined {
    const image = this.images.get(manifestDigest);
    return image && image.layers.every((l) => this.layers.has(l.digest)) ? image : undefined;
  }

  layerDir(digest: string): string {
    return join(this.root, 'layers/sha256', hex(digest));
  }

  imageSize(image: ImageRecord): number {
    return image.layers.reduce((sum, l) => sum + (this.layers.get(l.digest)?.unpackedBytes ?? 0), 0);
  }

  /** A fresh directory under this process's tmp/ (same filesystem as the cache, so rename is atomic). */
  tempDir(prefix: string): Promise<string> {
    return mkdtemp(join(this.tmpRoot, prefix));
  }

  /** Picks up a layer another process committed (dir and meta both present). */
  async reloadLayer(digest: string): Promise<LayerMeta | undefined> {
    try {
      const meta = JSON.parse(await readFile(join(this.root, 'layer-meta', `${hex(digest)}.json`), 'utf8')) as LayerMeta;
      await readdir(this.layerDir(digest));
      this.layers.set(digest, meta);
      return meta;
    } catch {
      return undefined;
    }
  }

  /** Picks up a reference another process pulled (its ref, image record and layers). */
  async reloadRef(canonical: string): Promise<void> {
    try {
      const ref = JSON.parse(await readFile(join(this.root, 'manifests', `${refKey(canonical)}.json`), 'utf8')) as RefRecord;
      const image = await this.readImageRecord(ref.manifestDigest);
      for (const layer of image.layers) if (!this.layers.has(layer.digest)) await this.reloadLayer(layer.digest);
      this.images.set(image.manifestDigest, image);
      this.refs.set(canonical, ref);
    } catch {
      // not there (or torn): a pull will write it
    }
  }

  /**
   * Whether the image record and the metas of all its layers are still on disk (another process may
   * have evicted them). What is gone is dropped from memory. Call it while holding the image
   * (in-use-markers.ts explains the order).
   */
  onDisk(image: ImageRecord): boolean {
    let ok = true;
    if (!existsSync(join(this.root, 'images', `${hex(image.manifestDigest)}.json`))) {
      this.images.delete(image.manifestDigest);
      ok = false;
    }
    for (const layer of image.layers) if (!this.layerOnDisk(layer.digest)) ok = false;
    return ok;
  }

  /** Whether a layer's meta is still on disk; drops it from memory when not. */
  layerOnDisk(digest: string): boolean {
    if (existsSync(join(this.root, 'layer-meta', `${hex(digest)}.json`))) return true;
    this.layers.delete(digest);
    return false;
  }

  // ---- removal (eviction and GC) ----

  /** First step of removing an image: its record goes (blobs stay until removeImageBlobs). */
  async unlistImage(manifestDigest: string): Promise<void> {
    this.images.delete(manifestDigest);
    await rm(join(this.root, 'images', `${hex(manifestDigest)}.json`), { force: true });
  }

  async removeImageBlobs(image: ImageRecord): Promise<void> {
    await rm(join(this.root, 'blobs/sha256', hex(image.manifestDigest)), { force: true });
    await rm(join(this.root, 'blobs/sha256', hex(image.configDigest)), { force: true });
  }

  /** First step of removing a layer: its meta goes, so no process picks it up any more. */
  async unlistLayer(digest: string): Promise<void> {
    this.layers.delete(digest);
    await rm(join(this.root, 'layer-meta', `${hex(digest)}.json`), { force: true });
  }

  /** Puts back a layer unlisted by unlistLayer() (it gained a holder meanwhile). */
  async restoreLayer(meta: LayerMeta): Promise<void> {
    await this.writeAtomic(join(this.root, 'layer-meta', `${hex(meta.digest)}.json`), JSON.stringify(meta));
    this.layers.set(meta.digest, meta);
  }

  /**
   * Last steps of removing a layer, in two: takeOutLayerDir() moves its directory into this
   * process's temp dir (one rename: fast, atomic), deleteTakenOut() then deletes it (seconds for a
   * large layer). A crash between the two leaves it in a temp dir, which the next open sweeps;
   * deleted in place, one layer after another, a crash left every layer not yet reached on disk with
   * its record already gone, for good. Null when it was not there.
   */
  async takeOutLayerDir(digest: string): Promise<string | null> {
    const doomed = join(this.tmpRoot, `evicted-${hex(digest)}`);
    try {
      await rename(this.layerDir(digest), doomed);
      return doomed;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }

  async deleteTakenOut(doomed: string): Promise<void> {
    await rm(doomed, { recursive: true, force: true });
  }

  async removeRef(canonical: string): Promise<void> {
    this.refs.delete(canonical);
    await rm(join(this.root, 'manifests', `${refKey(canonical)}.json`), { force: true });
  }

  async removeImage(manifestDigest: string): Promise<void> {
    const image = this.images.get(manifestDigest);
    this.images.delete(manifestDigest);
    await rm(join(this.root, 'images', `${hex(manifestDigest)}.json`), { force: true });
    await rm(join(this.root, 'blobs/sha256', hex(manifestDigest)), { force: true });
    if (image) await rm(join(this.root, 'blobs/sha256', hex(image.configDigest)), { force: true });
  }

  /** Takes the layer out of the cache atomically (rename into tmp), then deletes it. */
  async removeLayer(digest: string): Promise<void> {
    this.layers.delete(digest);
    await rm(join(this.root, 'layer-meta', `${hex(digest)}.json`), { force: true });
    const dir = await this.takeOutLayerDir(digest);
    if (dir) await this.deleteTakenOut(dir);
  }

  /**
   * Moves an unpacked layer into place. If another process committed the same digest first, ours is
   * discarded (same verified content).
   */
  async commitLayer(tmpDir: string, meta: LayerMeta): Promise<void> {
    // Another process may have committed the same layer meanwhile: who may use it widens, never narrows.
    const there = await this.reloadLayer(meta.digest);
    if (there) meta = withPrivateTo(meta, widened(there.privateTo, meta.privateTo));
    await this.writeAtomic(join(this.root, 'layer-meta', `${hex(meta.digest)}.json`), JSON.stringify(meta));
    try {
      await rename(tmpDir, this.layerDir(meta.digest));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
      await rm(tmpDir, { recursive: true, force: true });
    }
    this.layers.set(meta.digest, meta);
  }

  /** `viewer` fetched the cached layer's blob itself: it may use the layer now (everyone, if anonymous). */
  async shareLayer(digest: string, viewer: string | undefined): Promise<LayerMeta | undefined> {
    const meta = (await this.reloadLayer(digest)) ?? this.layers.get(digest);
    if (!meta || visibleTo(meta, viewer)) return meta;
    const shared = withPrivateTo(meta, widened(meta.privateTo, viewers(viewer)));
    await this.writeAtomic(join(this.root, 'layer-meta', `${hex(digest)}.json`), JSON.stringify(shared));
    this.layers.set(digest, shared);
    return shared;
  }

  async putBlob(digest: string, bytes: Buffer): Promise<void> {
    await this.writeAtomic(join(this.root, 'blobs/sha256', hex(digest)), bytes);
  }

  /** `viewer` fetched the image's config blob itself: it may use the image's config now (everyone, if anonymous). */
  async shareImage(manifestDigest: string, viewer: string | undefined): Promise<void> {
    const image = this.images.get(manifestDigest);
    if (!image || visibleTo(image, viewer)) return;
    await this.putImage(withPrivateTo(image, widened(image.privateTo, viewers(viewer))));
  }

  /** Records an image a pull fetched for `viewer`; one another process recorded meanwhile widens who may use it. */
  async recordImage(image: ImageRecord, viewer: string | undefined): Promise<void> {
    const there = await this.readImageRecord(image.manifestDigest).catch(() => undefined);
    await this.putImage(withPrivateTo(image, there ? widened(there.privateTo, viewers(viewer)) : viewers(viewer)));
  }

  /** The image record on disk (another process may have written it); rejects when there is none. */
  private async readImageRecord(manifestDigest: string): Promise<ImageRecord> {
    return JSON.parse(await readFile(join(this.root, 'images', `${hex(manifestDigest)}.json`), 'utf8')) as ImageRecord;
  }

  /** The size of a cached manifest or config blob. */
  async blobSize(digest: string): Promise<number | undefined> {
    return stat(join(this.root, 'blobs/sha256', hex(digest))).then((s) => s.size, () => undefined);
  }

  async putImage(image: ImageRecord): Promise<void> {
    await this.writeAtomic(join(this.root, 'images', `${hex(image.manifestDigest)}.json`), JSON.stringify(image));
    this.images.set(image.manifestDigest, image);
  }

  async putRef(ref: RefRecord): Promise<void> {
    this.refs.set(ref.reference, ref);
    await this.writeAtomic(join(this.root, 'manifests', `${refKey(ref.reference)}.json`), JSON.stringify(ref));
  }

  /** Records a use in memory only; persistRefs() writes it out. */
  touch(canonical: string, at: Date): void {
    const ref = this.refs.get(canonical);
    if (!ref) return;
    ref.lastUsedAt = at.toISOString();
    this.touched.add(canonical);
  }

  /**
   * Writes out the uses touch() recorded, each onto the reference as it is on disk now: a reference
   * another process sharing the cache moved to another digest meanwhile, or evicted, is left as it
   * is (before, this process's older view was written back over it: the tag named its old digest
   * again, or an evicted image was listed again).
   */
  async persistRefs(): Promise<void> {
    for (const canonical of this.touched) {
      const mine = this.refs.get(canonical);
      if (!mine) continue; // evicted here
      const path = join(this.root, 'manifests', `${refKey(canonical)}.json`);
      let onDisk: RefRecord;
      try {
        onDisk = JSON.parse(await readFile(path, 'utf8')) as RefRecord;
      } catch {
        continue; // evicted by another process (or torn: the next pull writes it)
      }
      if (onDisk.manifestDigest !== mine.manifestDigest || onDisk.digest !== mine.digest || onDisk.lastUsedAt >= mine.lastUsedAt) continue;
      await this.writeAtomic(path, JSON.stringify({ ...onDisk, lastUsedAt: mine.lastUsedAt }));
    }
    this.touched.clear();
  }

  /** `data` at `path` whole or not at all; a write that failed (a full disk) leaves no temp file behind. */
  private async writeAtomic(path: string, data: string | Buffer): Promise<void> {
    const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await writeFile(tmp, data, { mode: 0o600 });
      await rename(tmp, path);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
  }
}
