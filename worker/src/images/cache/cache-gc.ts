/**
 * Clean-up of the image cache: garbage collection (what no reference needs), eviction on request
 * (DELETE /v1/images), eviction to the disk budget and to the free space kept on the cache's file
 * system (least recently used first), and eviction of every image nobody holds when a pull found the
 * disk full. An image held by a job or a pull, of this store or of any other process sharing the
 * cache directory (in-use-markers.ts), is never removed, nor are its layers, nor the layers of this
 * store's pulls in progress.
 */
import { statfs } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { CacheIndex, ImageRecord } from './cache-index.ts';
import type { HoldCounts } from './hold-counts.ts';
import { liveHolders, type InUseMarkers, type LiveHolders } from './in-use-markers.ts';

export interface CacheGcOptions {
  /** The cache directory (shared with other processes of this host). */
  root: string;
  /** This store's holds. */
  markers: InUseMarkers;
  /** Layers of this store's pulls in progress (count per digest). */
  pinned: HoldCounts;
  logger?: Logger;
  /** The disk budget for unpacked layers (ImageStoreOptions.maxCacheBytes); none when undefined. */
  maxCacheBytes?: number;
  /**
   * The share of the cache's file system (0..1) kept free: after each pull, least recently used
   * images nobody holds are evicted while less is free. 0 or undefined: none.
   */
  minFreeFraction?: number;
  /**
   * The most references the cache keeps (ImageStoreOptions.maxReferences); after each pull the least
   * recently used ones nobody holds are forgotten past it. None when undefined.
   */
  maxReferences?: number;
  /** Told of each image reference evicted (metrics: sbx_image_cache_evictions_total). */
  onEvicted?: (reason: EvictionReason, count: number) => void;
}

/**
 * budget: over maxCacheBytes or under minFreeFraction; request: DELETE /v1/images; disk_full: a pull
 * hit ENOSPC; references: more references than maxReferences.
 */
export type EvictionReason = 'budget' | 'request' | 'disk_full' | 'references';

export interface EvictResult {
  evicted: string[];
  result: 'evicted' | 'in_use' | 'not_cached';
  freedBytes: number;
}

export class CacheGc {
  constructor(private readonly opts: CacheGcOptions) {}

  /**
   * Removes what no reference needs: image records without a reference, layers without an image.
   * Images held by a job or a pull (of any process sharing the cache) are kept. Returns the bytes freed.
   */
  async gc(index: CacheIndex): Promise<number> {
    await index.load(); // references and images other processes added
    return this.collect(index);
  }

  /**
   * Forget every reference that resolved to `digest` (the reference digest or its manifest) and
   * free what is then unreferenced. An image a running job holds (in any process sharing the cache)
   * is kept: 'in_use'.
   */
  async evict(index: CacheIndex, digest: string): Promise<EvictResult> {
    await index.load();
    const refs = index.allRefs().filter((r) => r.digest === digest || r.manifestDigest === digest);
    if (refs.length === 0) return { evicted: [], result: 'not_cached', freedBytes: 0 };
    const held = await this.holders(index);
    if (refs.some((r) => held.images.has(r.manifestDigest))) return { evicted: [], result: 'in_use', freedBytes: 0 };
    for (const r of refs) await index.removeRef(r.reference);
    const freedBytes = await this.collect(index);
    this.opts.logger?.info({ digest, images: refs.map((r) => r.reference), freedBytes }, 'image evicted on request');
    this.opts.onEvicted?.('request', refs.length);
    return { evicted: refs.map((r) => r.reference), result: 'evicted', freedBytes };
  }

  /**
   * After a pull: removes the images no reference needs any more (a tag that moved leaves its old
   * digest behind), then evicts least recently used references nobody holds until the layers fit
   * maxCacheBytes and the file system has minFreeFraction free. An image a reference still names is
   * never evicted while an unreferenced one takes room.
   */
  async afterPull(index: CacheIndex, pulled?: string): Promise<void> {
    await index.load(); // the cache is shared: count (and consider) other processes' images too
    await this.forgetReferencesPastBound(index, pulled);
    if (index.hasUnreferencedImages()) await this.collect(index);
    const budget = this.opts.maxCacheBytes;
    const minFree = this.opts.minFreeFraction ?? 0;
    if (budget === undefined && minFree <= 0) return;
    let total = index.layerBytes();
    const overBudget = async (): Promise<boolean> => (budget !== undefined && total > budget) || (minFree > 0 && (await this.freeFraction()) < minFree);
    if (!(await overBudget())) return;
    for (const ref of await this.unheldOldestFirst(index)) {
      if (!(await overBudget())) break;
      await index.removeRef(ref.reference);
      this.opts.logger?.info({ image: ref.reference, lastUsedAt: ref.lastUsedAt }, 'image evicted (cache over budget or its disk short of free space)');
      this.opts.onEvicted?.('budget', 1);
      total -= await this.collect(index);
    }
  }

  /**
   * Past maxReferences, the least recently used references but `pulled` (the one just pulled) are
   * forgotten; their images go with the next collection once no reference names them and no job
   * holds them. A reference costs no disk when it names an image already cached (another tag of it),
   * so the disk budgets never bounded them: one tenant naming one small image under 600 tags made
   * each heartbeat of the worker (its `images`, every SBX_HEARTBEAT_MS) 113 KB and every
   * GET /v1/images or /v1/workers read all of it, growing with each new tag for as long as the cache
   * lived. Held images' references are forgotten too (collect() keeps what a job holds): with every
   * tag naming the image a job runs, none would otherwise be. A forgotten tag is resolved again by
   * the next job that names it; its layers stay cached while another reference needs them.
   */
  private async forgetReferencesPastBound(index: CacheIndex, pulled: string | undefined): Promise<void> {
    const max = this.opts.maxReferences;
    if (max === undefined) return;
    const over = index.allRefs().length - max;
    if (over <= 0) return;
    const doomed = index
      .allRefs()
      .filter((r) => r.reference !== pulled)
      .sort((a, b) => a.lastUsedAt.localeCompare(b.lastUsedAt))
      .slice(0, over);
    for (const ref of doomed) await index.removeRef(ref.reference);
    if (doomed.length === 0) return;
    this.opts.logger?.info({ images: doomed.map((r) => r.reference), maxReferences: max }, 'least recently used image references forgotten (more than SBX_IMAGE_CACHE_REFERENCES)');
    this.opts.onEvicted?.('references', doomed.length);
  }

  /**
   * A pull (or a hold on a cached image) found the disk full: evicts every reference nobody holds (a
   * job or a pull, of any process sharing the cache), least recently used first, but those of the
   * image `keep` (the cached image a job is about to run). Returns how many images it evicted
   * (freeing inodes counts as much as freeing bytes: images of empty files free no bytes).
   */
  async evictUnheld(index: CacheIndex, keep?: string): Promise<number> {
    await index.load();
    const refs = (await this.unheldOldestFirst(index)).filter((r) => r.manifestDigest !== keep);
    for (const ref of refs) await index.removeRef(ref.reference);
    const freedBytes = refs.length ? await this.collect(index) : 0;
    if (refs.length) {
      this.opts.logger?.warn({ images: refs.map((r) => r.reference), freedBytes }, 'images evicted: the cache disk was found full');
      this.opts.onEvicted?.('disk_full', refs.length);
    }
    return refs.length;
  }

  private async unheldOldestFirst(index: CacheIndex) {
    const held = await this.holders(index);
    return index
      .allRefs()
      .filter((r) => !held.images.has(r.manifestDigest))
      .sort((a, b) => a.lastUsedAt.localeCompare(b.lastUsedAt));
  }

  /** The share of the cache's file system an unprivileged writer could still use (statfs bavail / blocks). */
  private async freeFraction(): Promise<number> {
    const s = await statfs(this.opts.root);
    return s.blocks > 0 ? s.bavail / s.blocks : 1;
  }

  /** Images and layers held by any process on this host (markers), this store's pulls included. */
  private async holders(index: CacheIndex): Promise<LiveHolders> {
    const held = await liveHolders(this.opts.root);
    for (const digest of this.opts.markers.digests()) held.images.add(digest);
    for (const digest of this.opts.pinned.keys()) held.layers.add(digest);
    for (const digest of held.images) for (const l of index.image(digest)?.layers ?? []) held.layers.add(l.digest);
    return held;
  }

  /**
   * Removes image records no reference or holder needs, then layers no image or holder needs.
   * Records go first, then holders are read again and whatever gained one meanwhile is restored;
   * only then are layer directories deleted (see in-use-markers.ts). Returns the bytes freed.
   */
  private async collect(index: CacheIndex): Promise<number> {
    let held = await this.holders(index);
    const wanted = new Set<string>(held.images);
    for (const ref of index.allRefs()) wanted.add(ref.manifestDigest);
    const doomedImages = index.allImages().filter((image) => !wanted.has(image.manifestDigest));
    for (const image of doomedImages) await index.unlistImage(image.manifestDigest);
    const liveLayers = new Set<string>(held.layers);
    for (const image of index.allImages()) for (const l of image.layers) liveLayers.add(l.digest);
    const doomedLayers = index.allLayers().filter((layer) => !liveLayers.has(layer.digest));
    for (const layer of doomedLayers) await index.unlistLayer(layer.digest);

    held = await liveHolders(this.opts.root);
    const removedImages: ImageRecord[] = [];
    for (const image of doomedImages) {
      if (held.images.has(image.manifestDigest)) {
        await index.putImage(image);
        for (const l of image.layers) held.layers.add(l.digest);
      } else {
        removedImages.push(image);
      }
    }
    let freed = 0;
    // Every doomed directory out of the cache first (renames), then deleted: a crash meanwhile
    // leaves them in our temp dir, swept at the next open, never in the cache without their records.
    const takenOut: string[] = [];
    for (const layer of doomedLayers) {
      if (held.layers.has(layer.digest)) {
        await index.restoreLayer(layer);
        continue;
      }
      const dir = await index.takeOutLayerDir(layer.digest);
      if (dir) takenOut.push(dir);
      freed += layer.unpackedBytes;
    }
    for (const dir of takenOut) await index.deleteTakenOut(dir);
    for (const image of removedImages) await index.removeImageBlobs(image);
    if (freed) this.opts.logger?.info({ freedBytes: freed }, 'image cache garbage collected');
    return freed;
  }
}
