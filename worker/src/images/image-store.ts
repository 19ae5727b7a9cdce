/**
 * The worker's image store: resolves a reference to unpacked, verified, read-only layer directories
 * (overlay lowerdirs), pulling from the registry when needed.
 *
 * - A cached tag under policy 'if-not-present' is answered from memory (no registry contact).
 * - Concurrent acquires of one reference share one pull; concurrent pulls of one layer from one
 *   registry share one download. Layers download, decompress and unpack as one stream, several layers at a time.
 * - Every blob is verified before it is used or cached, and committed by rename (P31, P32).
 * - Pulls are bounded: at most `pullConcurrency` at once (cache hits and joined pulls wait for
 *   none), each within `pullTimeoutMs`, each transfer failing when it stalls (transfer-watch.ts).
 *   A pull stops (its downloads aborted) once every acquire waiting for it was aborted; an acquire
 *   without a signal (a pre-pull) keeps it going until it ends or reaches its deadline.
 *
 * This file is the front; the work is in its folders: registry/ (clients, auth, TLS, manifests),
 * pull/ (one pull: image-puller.ts; bounds; single-flight), layers/ (decompress, verify, unpack in
 * worker threads), cache/ (the on-disk index, in-use markers, locks, GC and eviction: cache-gc.ts).
 */
import type { Logger } from 'pino';
import { ImageNotFoundError, ImagePullFailedError } from '../../../core/src/errors.ts';
import { parseImageReference, type ImageReference } from '../../../core/src/image-ref.ts';
import type { ImageRuntimeConfig } from '../launch/image-config.ts';
import { CacheGc, type EvictionReason, type EvictResult } from './cache/cache-gc.ts';
import { CacheIndex, type RefRecord } from './cache/cache-index.ts';
import { HoldCounts } from './cache/hold-counts.ts';
import { BackgroundRerun } from './cache/background-rerun.ts';
import { InUseMarkers } from './cache/in-use-markers.ts';
import { sharedUnpackPool } from './layers/unpack-pool.ts';
import { asDiskFull, ImagePuller, isDiskFull, type ImagePullerOptions, type PullPolicy, type PullResult } from './pull/image-puller.ts';
import { PullBounds, type PullBoundsOptions } from './pull/pull-bounds.ts';
import type { Requester } from './tenant-shares.ts';
import { SingleFlight } from './pull/single-flight.ts';
import { hostPlatform, type Platform } from './registry/manifest.ts';
import type { RegistryCredentials } from './registry/registry-auth.ts';
import { credentialsKey, RegistryClients, type RegistryClientsOptions } from './registry/registry-clients.ts';

export type { ImageRuntimeConfig } from '../launch/image-config.ts';
export type { PullPolicy } from './pull/image-puller.ts';
export type { RegistryCredentials } from './registry/registry-auth.ts';
export type { RegistryTls } from './registry/registry-certs.ts';

export interface AcquiredImage {
  /** Canonical reference. */
  reference: string;
  /** What the reference resolved to in the registry: the manifest digest (the index digest for multi-arch images). */
  digest: string;
  /** Absolute dirs of the unpacked layers, BOTTOM first, read-only: overlay lowerdirs (reverse them for lowerdir=). */
  layerDirs: string[];
  config: ImageRuntimeConfig;
  /** Sum of the unpacked layers' file sizes. */
  sizeBytes: number;
  /** false = served from the cache. */
  pulled: boolean;
  /** The job no longer uses the image (it may then be evicted). Idempotent. */
  release(): void;
}

/** Registries (RegistryClientsOptions), pulls (ImagePullerOptions, PullBoundsOptions) and the cache. */
export interface ImageStoreOptions extends RegistryClientsOptions, ImagePullerOptions, PullBoundsOptions {
  /** e.g. /var/lib/sbx/images */
  root: string;
  logger?: Logger;
  platform?: Platform;
  /**
   * Disk budget for unpacked layers. After each pull, least recently used images that no job holds
   * are evicted until the cache fits (in-use images are never evicted, so it may stay above). Holds
   * of every process sharing the cache directory on this host count (in-use-markers.ts).
   */
  maxCacheBytes?: number;
  /** The share (0..1) of the cache's file system kept free the same way, after each pull (cache-gc.ts). */
  minFreeFraction?: number;
  /** The most image references (tags and digests jobs named) the cache keeps, least recently used forgotten first (cache-gc.ts). */
  maxReferences?: number;
  /** Told of each image reference evicted (metrics: sbx_image_cache_evictions_total). */
  onEvicted?: (reason: EvictionReason, count: number) => void;
}

export interface AcquireOptions {
  policy?: PullPolicy;
  signal?: AbortSignal;
  /** Credentials for this pull only (not shared with other pulls). */
  credentials?: RegistryCredentials;
  /** Whose job needs the image, and its queue priority: pull permits and unpack threads are shared fairly (tenant-shares.ts). */
  requester?: Requester;
  /**
   * With policy 'always': a tag this store resolved from the registry less than this long ago is
   * taken from the cache instead (jobs' `pull: "always"`, SBX_PULL_ALWAYS_FRESH_MS), so a burst of
   * such jobs makes one registry request per tag, not one each. Default 0: always asks.
   */
  freshForMs?: number;
}

/** At most this many tags remembered as just resolved (the oldest are forgotten first). */
const MAX_RESOLVED_TAGS = 10_000;

export class ImageStore {
  private readonly opts: ImageStoreOptions;
  private readonly clients: RegistryClients;
  private readonly puller: ImagePuller;
  private readonly cacheGc: CacheGc;
  private readonly pulls = new SingleFlight<PullResult>();
  /** Acquisitions not yet released and pulls in progress, per manifest digest, mirrored to marker files. */
  private readonly markers: InUseMarkers;
  /** Holds of finished pulls, released on the next turn of the event loop (see acquire). */
  private readonly deferredReleases = new HoldCounts();
  private readonly closing = new AbortController();
  private closed: Promise<void> | null = null;
  private readonly bounds: PullBounds;
  private indexPromise: Promise<CacheIndex> | null = null;
  private index: CacheIndex | null = null;
  /** gc() in the background, for an image whose last hold went after its tag had moved on. close() waits for it. */
  private readonly collection = new BackgroundRerun(
    () => this.gc().then(() => {}, (err: Error) => this.opts.logger?.warn({ err: err.message }, 'removing images no reference names failed; tried again after the next pull')),
    () => this.closing.signal.aborted, // closing: the index goes; the next start collects
  );
  /** When each tag (with its credentials) was last resolved from the registry by policy 'always'. */
  private readonly resolvedAt = new Map<string, number>();
  /** Digests whose eviction was asked while a job held them: tried again as this store's holds go (evict()). */
  private readonly evictWhenReleased = new Set<string>();
  /** The evictions of evictWhenReleased tried again in the background, as this store's holds go. close() waits for it. */
  private readonly evictionRetry = new BackgroundRerun(async () => {
    for (const digest of [...this.evictWhenReleased]) {
      await this.evict(digest).catch((err: Error) => this.opts.logger?.warn({ digest, err: err.message }, 'evicting an image once released failed; tried again when the next hold goes'));
    }
  }, () => this.closing.signal.aborted);

  constructor(opts: ImageStoreOptions) {
    this.opts = opts;
    this.markers = new InUseMarkers(opts.root);
    // Layers of pulls in progress (count per digest): GC must not remove them.
    const pinned = new HoldCounts();
    this.clients = new RegistryClients(opts);
    this.puller = new ImagePuller({ ...opts, platform: opts.platform ?? hostPlatform(), clients: this.clients, markers: this.markers, pinned });
    this.cacheGc = new CacheGc({ ...opts, markers: this.markers, pinned });
    this.bounds = new PullBounds(opts, this.closing.signal);
  }

  async acquire(reference: string, opts: AcquireOptions = {}): Promise<AcquiredImage> {
    const ref = parseImageReference(reference);
    const policy = opts.policy ?? 'if-not-present';
    const index = this.index ?? (await this.openIndex());
    // hand() returns null when another process evicted the image just before our hold: try again.
    for (let attempt = 1; ; attempt++) {
      const acquired = await this.acquireOnce(index, ref, policy, opts);
      if (acquired) return acquired;
      if (attempt >= 3) throw new ImagePullFailedError(ref.canonical, 'another process sharing the image cache evicted it each time it was acquired (3 times); the job may be tried again');
    }
  }

  private async acquireOnce(index: CacheIndex, ref: ImageReference, asked: PullPolicy, opts: AcquireOptions): Promise<AcquiredImage | null> {
    const viewer = opts.credentials ? credentialsKey(ref.registry, opts.credentials) : undefined;
    const tag = `${ref.canonical}\u0000${viewer ?? ''}`;
    const fresh = asked === 'always' && Date.now() - (this.resolvedAt.get(tag) ?? -Infinity) < (opts.freshForMs ?? 0);
    const policy = fresh ? 'if-not-present' : asked;
    if (policy !== 'always') {
      const cached = this.cached(index, ref, viewer);
      const handed = cached ? await this.handMakingRoom(index, cached) : null;
      if (handed) return handed;
      await index.reloadRef(ref.canonical); // another process sharing the cache may have pulled it
      const reloaded = this.cached(index, ref, viewer);
      const reloadedHanded = reloaded ? await this.handMakingRoom(index, reloaded) : null;
      if (reloadedHanded) return reloadedHanded;
      if (policy === 'never') throw new ImageNotFoundError(`${ref.canonical} (not in the local cache and the pull policy is never)`);
    }
    // Pulls with different credentials never share a flight: a wrong password must not ride on a right one.
    const key = `${ref.canonical}\u0000${policy}\u0000${viewer ?? ''}`;
    // Shared by every acquire of `key`; aborted once none of them waits any more.
    const result = await this.pulls.run(
      key,
      (abandoned) => this.bounds.run(ref.canonical, opts.requester ?? {}, abandoned, async (signal) => {
        // pull() returns the image retained, so that eviction (ours or a concurrent pull's) cannot
        // remove it before the waiters take their own hold in hand(); released right below.
        const pulled = await this.pullMakingRoom(index, ref, policy, opts.credentials, viewer, signal, opts.requester);
        if (policy === 'always') this.rememberResolved(tag);
        try {
          await this.cacheGc.afterPull(index, ref.canonical);
        } finally {
          this.releaseAfterWaiters(pulled.image.manifestDigest);
        }
        return pulled;
      }),
      opts.signal,
    );
    return this.hand(index, result, true);
  }

  private rememberResolved(tag: string): void {
    this.resolvedAt.delete(tag); // re-inserted last: the map's order is the resolutions' order
    this.resolvedAt.set(tag, Date.now());
    if (this.resolvedAt.size > MAX_RESOLVED_TAGS) this.resolvedAt.delete(this.resolvedAt.keys().next().value!);
  }

  /**
   * A pull that found the disk full is tried once more after every image nobody holds was evicted,
   * if that freed anything: an old image nobody runs any more should not keep a new one out.
   */
  private async pullMakingRoom(...args: Parameters<ImagePuller['pull']>): ReturnType<ImagePuller['pull']> {
    try {
      return await this.puller.pull(...args);
    } catch (e) {
      // Tried again once if anything was evicted: images of empty files free inodes, not bytes.
      if (!isDiskFull(e) || (await this.cacheGc.evictUnheld(args[0])) === 0) throw e;
      return this.puller.pull(...args);
    }
  }

  /**
   * hand() of a cached image, whose hold writes a marker file: on a full disk (filled by something
   * else: a cached image needs no other byte to run) every other image nobody holds is evicted and
   * the hold tried once more, as a pull is; if that freed nothing, the job ends image_pull_failed
   * "no disk space left" (before, the marker's ENOSPC ended it `internal`, and nothing was evicted).
   */
  private async handMakingRoom(index: CacheIndex, result: PullResult): Promise<AcquiredImage | null> {
    try {
      return this.hand(index, result, false);
    } catch (e) {
      const error = asDiskFull(result.ref.canonical, e);
      if (!isDiskFull(error) || (await this.cacheGc.evictUnheld(index, result.image.manifestDigest)) === 0) throw error;
    }
    try {
      return this.hand(index, result, false);
    } catch (e) {
      throw asDiskFull(result.ref.canonical, e);
    }
  }

  /**
   * Releases a finished pull's hold once the waiters took their own holds (their continuations are
   * microtasks), so that the marker file is not removed and rewritten in between.
   */
  private releaseAfterWaiters(digest: string): void {
    this.deferredReleases.add(digest);
    setImmediate(() => {
      this.deferredReleases.remove(digest);
      this.markers.release(digest);
    });
  }

  /**
   * Removes what no reference needs: image records without a reference, layers without an image.
   * Images held by a job or a pull (of any process sharing the cache) are kept. Returns the bytes freed.
   */
  async gc(): Promise<number> {
    return this.cacheGc.gc(this.index ?? (await this.openIndex()));
  }

  /**
   * Forget every reference that resolved to `digest` (the reference digest or its manifest) and
   * free what is then unreferenced. An image a running job holds (in any process sharing the cache)
   * is kept: 'in_use', and evicted once the holds go (tried again each time one of this store's
   * holds goes: a job that has just ended releases its image a little after its answer, and a
   * DELETE /v1/images sent on that answer was dropped).
   */
  async evict(digest: string): Promise<EvictResult> {
    const result = await this.cacheGc.evict(this.index ?? (await this.openIndex()), digest);
    if (result.result === 'in_use') this.evictWhenReleased.add(digest);
    else this.evictWhenReleased.delete(digest);
    return result;
  }

  /** Total unpacked bytes of the cached layers. */
  async cacheBytes(): Promise<number> {
    const index = this.index ?? (await this.openIndex());
    return index.layerBytes();
  }

  /**
   * Opens the cache index and starts the unpack workers, so the first pull does not wait for them;
   * then, in the background, removes what no reference names (left by a worker that stopped while
   * a job held an image whose tag had moved).
   */
  async warmUp(): Promise<void> {
    const [, index] = await Promise.all([sharedUnpackPool().warm(), this.index ?? this.openIndex()]);
    if (index.hasUnreferencedImages()) this.collection.soon();
  }

  async list(): Promise<Array<{ image: string; digest: string; sizeBytes: number; lastUsedAt: string }>> {
    const index = this.index ?? (await this.openIndex());
    return index
      .allRefs()
      .map((ref) => {
        const image = index.completeImage(ref.manifestDigest);
        return image ? { image: ref.reference, digest: ref.digest, sizeBytes: index.imageSize(image), lastUsedAt: ref.lastUsedAt } : null;
      })
      .filter((x): x is NonNullable<typeof x> => x !== null)
      .sort((a, b) => a.image.localeCompare(b.image));
  }

  /**
   * Does the cache hold `reference` now (by reference, or for a pinned digest by any reference that
   * resolved to it)? Credentials are not checked: this is for placement, not for handing it out. On a
   * miss the reference is read again from disk: another process sharing this cache may have pulled it.
   */
  async holds(reference: string): Promise<boolean> {
    const ref = parseImageReference(reference);
    const index = this.index ?? (await this.openIndex());
    const has = () => {
      const record = index.ref(ref.canonical);
      if (record && index.completeImage(record.manifestDigest)) return true;
      return ref.digest !== null && index.allRefs().some((r) => (r.digest === ref.digest || r.manifestDigest === ref.digest) && index.completeImage(r.manifestDigest));
    };
    if (has()) return true;
    await index.reloadRef(ref.canonical);
    return has();
  }

  /** Stops pulls, releases holds, closes connections. Idempotent: later calls wait for the first. */
  close(): Promise<void> {
    this.closed ??= this.closeOnce();
    return this.closed;
  }

  private async closeOnce(): Promise<void> {
    this.closing.abort(new Error('image store closed'));
    await this.pulls.idle();
    await this.puller.idle();
    await new Promise((resolve) => setImmediate(resolve)); // pending pull holds (acquire)
    this.markers.releaseAll();
    await this.collection.running;
    await this.evictionRetry.running;
    if (this.index) {
      // A full disk costs this run's last-use times (the eviction order), not the rest of the shutdown.
      await this.index.persistRefs().catch((err: Error) => this.opts.logger?.warn({ err: err.message }, 'recording when cached images were last used failed: their eviction order goes by the previous record'));
      await this.index.close();
    }
    await this.clients.close();
  }

  /** Number of acquisitions not yet released, per manifest digest (for eviction). */
  inUseCount(manifestDigest: string): number {
    return this.markers.count(manifestDigest) - this.deferredReleases.count(manifestDigest);
  }

  private openIndex(): Promise<CacheIndex> {
    this.indexPromise ??= CacheIndex.open(this.opts.root).then((index) => (this.index = index));
    return this.indexPromise;
  }

  /** A cache hit for `viewer` (the hash of the request's own credentials, if any), or null. */
  private cached(index: CacheIndex, ref: ImageReference, viewer: string | undefined): PullResult | null {
    const visible = (r: RefRecord) => r.privateTo === undefined || r.privateTo === viewer;
    const record = index.ref(ref.canonical);
    if (record) {
      const image = visible(record) ? index.completeImage(record.manifestDigest) : undefined;
      return image ? { ref, image, digest: record.digest } : null;
    }
    if (ref.digest === null) return null;
    // A digest is immutable: any cached reference this viewer may use that resolved to it will do.
    const same = index.allRefs().find((r) => (r.digest === ref.digest || r.manifestDigest === ref.digest) && visible(r) && index.completeImage(r.manifestDigest));
    const image = same ? index.completeImage(same.manifestDigest) : undefined;
    return image ? { ref, image, digest: ref.digest } : null;
  }

  /**
   * Takes a hold on the image and hands it out; null when another process evicted it before the
   * hold was visible (the caller then looks it up again or pulls).
   */
  private hand(index: CacheIndex, result: PullResult, pulled: boolean): AcquiredImage | null {
    const { image } = result;
    this.markers.hold(image.manifestDigest, image.layers.map((l) => l.digest));
    if (!index.onDisk(image)) {
      this.markers.release(image.manifestDigest);
      return null;
    }
    index.touch(result.ref.canonical, new Date());
    let released = false;
    return {
      reference: result.ref.canonical,
      digest: result.digest,
      layerDirs: image.layers.map((l) => index.layerDir(l.digest)),
      config: image.config,
      sizeBytes: index.imageSize(image),
      pulled,
      release: () => {
        if (released) return;
        released = true;
        this.markers.release(image.manifestDigest);
        // Its tag moved on while a job ran it: nothing names it now, so its files go.
        if (this.markers.count(image.manifestDigest) === 0 && !index.referenced(image.manifestDigest)) this.collection.soon();
        if (this.evictWhenReleased.size) this.evictionRetry.soon();
      },
    };
  }
}
