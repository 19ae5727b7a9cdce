/**
 * The on-disk image cache and its in-memory index. Layout under `root`:
 *
 *   layers/sha256/<hex>/        an unpacked layer (an overlay lowerdir), keyed by its blob digest
 *   layer-meta/<hex>.json       { digest, unpackedBytes, files } written before the layer is renamed in
 *   images/<hex>.json           ImageRecord of a platform manifest: its layers, config and size
 *   manifests/<refkey>.json     RefRecord: canonical reference → manifest digest, last use
 *   blobs/sha256/<hex>          raw manifests and configs as fetched (verified)
 *   tmp/                        work in progress; emptied at open (a crash never leaves a half layer in use)
 *
 * Everything is written to a temp path and renamed into place. The in-memory maps make a cache hit a
 * few Map lookups; they are loaded once at open and refreshed from disk on a miss (another process
 * may have pulled meanwhile).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { ImageRuntimeConfig } from './image-config.ts';

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
}

export interface RefRecord {
  reference: string;
  /** What the reference resolved to in the registry (an index digest for multi-arch images). */
  digest: string;
  /** The platform manifest in use (= digest for single-platform images). */
  manifestDigest: string;
  pulledAt: string;
  lastUsedAt: string;
}

export interface LayerMeta {
  digest: string;
  unpackedBytes: number;
  files: number;
  /** Directories carrying trusted.overlay.opaque (Node cannot read xattrs; image-user.ts reads this). */
  opaqueDirs: string[];
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

  private constructor(readonly root: string) {}

  static async open(root: string): Promise<CacheIndex> {
    const index = new CacheIndex(root);
    for (const dir of ['layers/sha256', 'layer-meta', 'images', 'manifests', 'blobs/sha256']) {
      await mkdir(join(root, dir), { recursive: true });
    }
    await rm(join(root, 'tmp'), { recursive: true, force: true });
    await mkdir(join(root, 'tmp'), { recursive: true });
    await index.load();
    return index;
  }

  /** (Re)reads every record from disk. Layers count only when both their dir and meta exist. */
  async load(): Promise<void> {
    for (const ref of await readJsonDir<RefRecord>(join(this.root, 'manifests'))) this.refs.set(ref.reference, ref);
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

  /** A fresh directory under tmp/ (same filesystem as the cache, so rename is atomic). */
  tempDir(prefix: string): Promise<string> {
    return mkdtemp(join(this.root, 'tmp', prefix));
  }

  /**
   * Moves an unpacked layer into place. If another process committed the same digest first, ours is
   * discarded (same verified content).
   */
  async commitLayer(tmpDir: string, meta: LayerMeta): Promise<void> {
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

  async putBlob(digest: string, bytes: Buffer): Promise<void> {
    await this.writeAtomic(join(this.root, 'blobs/sha256', hex(digest)), bytes);
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
    if (ref) ref.lastUsedAt = at.toISOString();
  }

  async persistRefs(): Promise<void> {
    for (const ref of this.refs.values()) {
      await this.writeAtomic(join(this.root, 'manifests', `${refKey(ref.reference)}.json`), JSON.stringify(ref));
    }
  }

  private async writeAtomic(path: string, data: string | Buffer): Promise<void> {
    const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
    await writeFile(tmp, data);
    await rename(tmp, path);
  }
}
