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
 */
import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { Dispatcher } from 'undici';
import { ImageNotFoundError, ImagePullFailedError, InvalidImageError } from '../../../core/src/errors.ts';
import { manifestReference, parseImageReference, type ImageReference } from '../../../core/src/image-ref.ts';
import { CacheIndex, type ImageRecord, type LayerMeta, type LayerRecord, type RefRecord } from './cache/cache-index.ts';
import { loadDockerCredentials } from './registry/docker-credentials.ts';
import { toRuntimeConfig, type ImageRuntimeConfig } from '../launch/image-config.ts';
import { DEFAULT_UNPACK_LIMITS, unpackLayer, type UnpackLimits } from './layers/layer-unpack.ts';
import { formatPlatform, hostPlatform, parseImageConfig, parseManifestDocument, selectPlatform, type Descriptor, type Platform } from './registry/manifest.ts';
import { layerCompression } from './registry/media-types.ts';
import type { RegistryCredentials } from './registry/registry-auth.ts';
import { newRegistryAgent } from './registry/registry-agent.ts';
import { EgressPolicy } from '../../../core/src/egress/egress-policy.ts';
import type { EgressAllowEntry } from '../../../core/src/egress/egress-allow.ts';
import type { RegistryTls } from './registry/registry-certs.ts';
import { MIRROR_RETRY, RegistryClient, type PullTarget, type RegistryClientOptions, type RetryPolicy } from './registry/registry-client.ts';
import { RegistryDispatchers } from './registry/registry-dispatchers.ts';
import { withFileLock } from './cache/file-lock.ts';
import { InUseMarkers, liveHolders, type LiveHolders } from './cache/in-use-markers.ts';
import { SingleFlight } from './pull/single-flight.ts';
import { SlotPool } from '../slots.ts';
import type { StallRule } from './registry/transfer-watch.ts';
import { sharedUnpackPool } from './layers/unpack-pool.ts';

export type { ImageRuntimeConfig } from '../launch/image-config.ts';
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

export type PullPolicy = 'if-not-present' | 'always' | 'never';

export interface ImageStoreOptions {
  /** e.g. /var/lib/sbx/images */
  root: string;
  logger?: Logger;
  /**
   * Hosts reached over plain http; loopback hosts (127.0.0.0/8, localhost, ::1) always are, unless
   * they have a `tls` entry.
   */
  insecureRegistries?: string[];
  /**
   * TLS material per host ('registry.example.com:5000', as in image references), usually from a
   * certs.d directory (loadRegistryCerts()). A host with an entry is always reached over https
   * (loopback and insecure ones too), through its own Agent trusting the system roots plus the
   * entry's CAs and presenting its client certificate. Registries, mirrors and redirect targets
   * (blob storage, token servers) each use their own host's entry, or the shared dispatcher.
   */
  tls?: Record<string, RegistryTls>;
  /**
   * Mirrors per registry ('docker.io' → ['mirror.local:5000']): pull-through caches serving the same
   * repositories, tried in order before the registry itself (see RegistryClientOptions.mirrors).
   */
  mirrors?: Record<string, string[]>;
  platform?: Platform;
  /** Credentials per registry host ('docker.io', 'host:port'); they win over dockerConfigPath. */
  credentials?: Record<string, RegistryCredentials>;
  /** A Docker config.json whose `auths` supply credentials. */
  dockerConfigPath?: string;
  /** Layers downloaded and unpacked at the same time (per store). Default 4. */
  layerConcurrency?: number;
  maxManifestBytes?: number;
  maxConfigBytes?: number;
  unpackLimits?: UnpackLimits;
  retry?: RetryPolicy;
  /**
   * Shared HTTP dispatcher for hosts without a `tls` entry; by default the store makes (and closes)
   * its own keep-alive Agent. Hosts with an entry always use their own Agent. A dispatcher given
   * here is used as it is: it applies `egressAllow` only if it was made by newRegistryAgent().
   */
  dispatcher?: Dispatcher;
  /**
   * Non-public destinations registries, mirrors, blob redirects and token servers may be reached at
   * (SBX_EGRESS_ALLOW, core/src/egress/egress-allow.ts). Default none: loopback, private,
   * link-local and every other non-public address are refused (egress_refused), checked on the
   * address actually connected to.
   */
  egressAllow?: readonly EgressAllowEntry[];
  /**
   * Disk budget for unpacked layers. After each pull, least recently used images that no job holds
   * are evicted until the cache fits (in-use images are never evicted, so it may stay above). Holds
   * of every process sharing the cache directory on this host count (in-use-markers.ts).
   */
  maxCacheBytes?: number;
  /** Told of each image reference evicted (metrics: sbx_image_cache_evictions_total). */
  onEvicted?: (reason: 'budget' | 'request', count: number) => void;
  /** Image pulls at once (SBX_PULL_CONCURRENCY); more wait in arrival order. Default 4. */
  pullConcurrency?: number;
  /** A pull not done after this long fails with image_pull_failed (SBX_PULL_TIMEOUT_MS). Default 10 min. */
  pullTimeoutMs?: number;
  /** A transfer receiving fewer than stallBytes over stallMs fails (SBX_PULL_STALL_*). Default 64 KiB in 30 s. */
  stall?: StallRule;
}

export interface AcquireOptions {
  policy?: PullPolicy;
  signal?: AbortSignal;
  /** Credentials for this pull only (not shared with other pulls). */
  credentials?: RegistryCredentials;
}

const DEFAULT_MAX_MANIFEST = 4 * 1024 * 1024;
const DEFAULT_MAX_CONFIG = 8 * 1024 * 1024;
export const DEFAULT_PULL_CONCURRENCY = 4;
export const DEFAULT_PULL_TIMEOUT_MS = 10 * 60_000;

interface PullResult {
  ref: ImageReference;
  image: ImageRecord;
  digest: string;
}

/** Runs `fn` over `items` with at most `limit` at a time; rejects with the first failure. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        results[i] = await fn(items[i]!);
      } catch (e) {
        failed = true;
        throw e;
      }
    }
  };
  const settled = await Promise.allSettled(Array.from({ length: Math.min(limit, items.length) }, worker));
  const failure = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failure) throw failure.reason;
  return results;
}

export class ImageStore {
  private readonly opts: ImageStoreOptions;
  private readonly platform: Platform;
  private readonly dispatcher: Dispatcher;
  private readonly ownsDispatcher: boolean;
  private readonly dispatchers: RegistryDispatchers;
  private readonly clients = new Map<string, RegistryClient>();
  private readonly pulls = new SingleFlight<PullResult>();
  private readonly layerPulls = new SingleFlight<LayerMeta>();
  /** Acquisitions not yet released and pulls in progress, per manifest digest, mirrored to marker files. */
  private readonly markers: InUseMarkers;
  /** Holds of finished pulls, released on the next turn of the event loop (see acquire). */
  private readonly deferredReleases = new Map<string, number>();
  /** Layers of pulls in progress (count per digest): GC must not remove them. */
  private readonly pinned = new Map<string, number>();
  private readonly closing = new AbortController();
  /** Permits for pulls (not for cache hits, nor for joining a pull in progress). */
  private readonly pullPermits: SlotPool;
  private indexPromise: Promise<CacheIndex> | null = null;
  private index: CacheIndex | null = null;
  private credentialsPromise: Promise<Map<string, RegistryCredentials>> | null = null;

  constructor(opts: ImageStoreOptions) {
    this.opts = opts;
    this.platform = opts.platform ?? hostPlatform();
    this.markers = new InUseMarkers(opts.root);
    this.ownsDispatcher = opts.dispatcher === undefined;
    const egress = new EgressPolicy(opts.egressAllow);
    this.dispatcher = opts.dispatcher ?? newRegistryAgent(egress);
    this.dispatchers = new RegistryDispatchers(this.dispatcher, opts.tls ?? {}, egress);
    this.pullPermits = new SlotPool(opts.pullConcurrency ?? DEFAULT_PULL_CONCURRENCY);
  }

  async acquire(reference: string, opts: AcquireOptions = {}): Promise<AcquiredImage> {
    const ref = parseImageReference(reference);
    const policy = opts.policy ?? 'if-not-present';
    const index = this.index ?? (await this.openIndex());
    // hand() returns null when another process evicted the image just before our hold: try again.
    for (let attempt = 1; ; attempt++) {
      const acquired = await this.acquireOnce(index, ref, policy, opts);
      if (acquired) return acquired;
      if (attempt >= 3) throw new Error(`${ref.canonical} was evicted by another process each time it was acquired`);
    }
  }

  private async acquireOnce(index: CacheIndex, ref: ImageReference, policy: PullPolicy, opts: AcquireOptions): Promise<AcquiredImage | null> {
    const viewer = opts.credentials ? credentialsKey(ref.registry, opts.credentials) : undefined;
    if (policy !== 'always') {
      const cached = this.cached(index, ref, viewer);
      const handed = cached ? this.hand(index, cached, false) : null;
      if (handed) return handed;
      await index.reloadRef(ref.canonical); // another process sharing the cache may have pulled it
      const reloaded = this.cached(index, ref, viewer);
      const reloadedHanded = reloaded ? this.hand(index, reloaded, false) : null;
      if (reloadedHanded) return reloadedHanded;
      if (policy === 'never') throw new ImageNotFoundError(`${ref.canonical} (not in the local cache and the pull policy is never)`);
    }
    // Pulls with different credentials never share a flight: a wrong password must not ride on a right one.
    const key = `${ref.canonical}\u0000${policy}\u0000${viewer ?? ''}`;
    // Shared by every acquire of `key`; aborted once none of them waits any more.
    const result = await this.pulls.run(
      key,
      (abandoned) => this.bounded(ref.canonical, abandoned, async (signal) => {
        // pull() returns the image retained, so that eviction (ours or a concurrent pull's) cannot
        // remove it before the waiters take their own hold in hand(); released right below.
        const pulled = await this.pull(index, ref, policy, opts.credentials, viewer, signal);
        try {
          await this.enforceBudget(index);
        } finally {
          // Released once the waiters took their own holds (their continuations are microtasks),
          // so that the marker file is not removed and rewritten in between.
          const digest = pulled.image.manifestDigest;
          this.deferredReleases.set(digest, (this.deferredReleases.get(digest) ?? 0) + 1);
          setImmediate(() => {
            const left = (this.deferredReleases.get(digest) ?? 1) - 1;
            if (left > 0) this.deferredReleases.set(digest, left);
            else this.deferredReleases.delete(digest);
            this.releaseDigest(digest);
          });
        }
        return pulled;
      }),
      opts.signal,
    );
    return this.hand(index, result, true);
  }

  /**
   * Runs one pull under the store's bounds: it waits for a pull permit (in arrival order), then
   * gets `pullTimeoutMs`; its signal aborts on the deadline, when nobody waits for it any more
   * (`abandoned`) or when the store closes. The deadline's error wins over whatever the aborted
   * work failed with.
   */
  private async bounded<T>(image: string, abandoned: AbortSignal, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const permit = await this.pullPermits.take(AbortSignal.any([abandoned, this.closing.signal]));
    const deadline = new AbortController();
    const ms = this.opts.pullTimeoutMs ?? DEFAULT_PULL_TIMEOUT_MS;
    const timer = setTimeout(() => deadline.abort(new ImagePullFailedError(image, `it did not finish within ${formatMs(ms)} (the pull deadline)`, { retryable: false })), ms);
    try {
      return await work(AbortSignal.any([abandoned, this.closing.signal, deadline.signal]));
    } catch (e) {
      throw deadline.signal.aborted ? deadline.signal.reason : e;
    } finally {
      clearTimeout(timer);
      this.pullPermits.give(permit);
    }
  }

  /**
   * Removes what no reference needs: image records without a reference, layers without an image.
   * Images held by a job or a pull (of any process sharing the cache) are kept. Returns the bytes freed.
   */
  async gc(): Promise<number> {
    const index = this.index ?? (await this.openIndex());
    await index.load(); // references and images other processes added
    return this.collect(index);
  }

  /**
   * Forget every reference that resolved to `digest` (the reference digest or its manifest) and
   * free what is then unreferenced. An image a running job holds (in any process sharing the cache)
   * is kept: 'in_use'.
   */
  async evict(digest: string): Promise<{ evicted: string[]; result: 'evicted' | 'in_use' | 'not_cached'; freedBytes: number }> {
    const index = this.index ?? (await this.openIndex());
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

  /** Total unpacked bytes of the cached layers. */
  async cacheBytes(): Promise<number> {
    const index = this.index ?? (await this.openIndex());
    return index.allLayers().reduce((sum, l) => sum + l.unpackedBytes, 0);
  }

  /** Opens the cache index and starts the unpack workers, so the first pull does not wait for them. */
  async warmUp(): Promise<void> {
    await Promise.all([sharedUnpackPool().warm(), this.index ?? this.openIndex()]);
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

  async close(): Promise<void> {
    this.closing.abort(new Error('image store closed'));
    await this.pulls.idle();
    await this.layerPulls.idle();
    await new Promise((resolve) => setImmediate(resolve)); // pending pull holds (acquire)
    this.markers.releaseAll();
    if (this.index) {
      await this.index.persistRefs();
      await this.index.close();
    }
    await this.dispatchers.close();
    if (this.ownsDispatcher) await this.dispatcher.close();
  }

  /** Number of acquisitions not yet released, per manifest digest (for eviction). */
  inUseCount(manifestDigest: string): number {
    return this.markers.count(manifestDigest) - (this.deferredReleases.get(manifestDigest) ?? 0);
  }

  // ---- cache ----

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

  private retain(manifestDigest: string, layers: readonly string[]): void {
    this.markers.hold(manifestDigest, layers);
  }

  private releaseDigest(manifestDigest: string): void {
    this.markers.release(manifestDigest);
  }

  /** Images and layers held by any process on this host (markers), this store's pulls included. */
  private async holders(index: CacheIndex): Promise<LiveHolders> {
    const held = await liveHolders(this.opts.root);
    for (const digest of this.markers.digests()) held.images.add(digest);
    for (const digest of this.pinned.keys()) held.layers.add(digest);
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
    for (const layer of doomedLayers) {
      if (held.layers.has(layer.digest)) {
        await index.restoreLayer(layer);
        continue;
      }
      await index.deleteLayerDir(layer.digest);
      freed += layer.unpackedBytes;
    }
    for (const image of removedImages) await index.removeImageBlobs(image);
    if (freed) this.opts.logger?.info({ freedBytes: freed }, 'image cache garbage collected');
    return freed;
  }

  /** Evicts least recently used references nobody holds until the layers fit maxCacheBytes. */
  private async enforceBudget(index: CacheIndex): Promise<void> {
    const budget = this.opts.maxCacheBytes;
    if (budget === undefined) return;
    await index.load(); // the cache is shared: count (and consider) other processes' images too
    let total = index.allLayers().reduce((sum, l) => sum + l.unpackedBytes, 0);
    if (total <= budget) return;
    const held = await this.holders(index);
    const candidates = index
      .allRefs()
      .filter((r) => !held.images.has(r.manifestDigest))
      .sort((a, b) => a.lastUsedAt.localeCompare(b.lastUsedAt));
    for (const ref of candidates) {
      if (total <= budget) break;
      await index.removeRef(ref.reference);
      this.opts.logger?.info({ image: ref.reference, lastUsedAt: ref.lastUsedAt }, 'image evicted (cache over budget)');
      this.opts.onEvicted?.('budget', 1);
      total -= await this.collect(index);
    }
  }

  /**
   * Takes a hold on the image and hands it out; null when another process evicted it before the
   * hold was visible (the caller then looks it up again or pulls).
   */
  private hand(index: CacheIndex, result: PullResult, pulled: boolean): AcquiredImage | null {
    const { image } = result;
    this.retain(image.manifestDigest, image.layers.map((l) => l.digest));
    if (!index.onDisk(image)) {
      this.releaseDigest(image.manifestDigest);
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
        this.releaseDigest(image.manifestDigest);
      },
    };
  }

  // ---- pulling ----

  private async pull(index: CacheIndex, ref: ImageReference, policy: PullPolicy, credentials: RegistryCredentials | undefined, viewer: string | undefined, signal: AbortSignal): Promise<PullResult> {
    const started = performance.now();
    const client = await this.client(ref.registry, credentials);
    const target: PullTarget = { image: ref.canonical, repository: ref.repository, signal };
    const maxManifest = this.opts.maxManifestBytes ?? DEFAULT_MAX_MANIFEST;
    const top = await client.getManifest(target, manifestReference(ref), maxManifest);
    const topDoc = parseManifestDocument(ref.canonical, top.bytes, top.contentType);

    let manifestDigest = top.digest;
    let manifestBytes = top.bytes;
    let doc = topDoc;
    const fetchPlatformManifest = async (chosen: Descriptor) => {
      const fetched = await client.getManifest(target, chosen.digest, maxManifest);
      if (fetched.bytes.length !== chosen.size) throw new InvalidImageError(ref.canonical, `manifest ${chosen.digest} has ${fetched.bytes.length} bytes, its index says ${chosen.size}`);
      manifestBytes = fetched.bytes;
      doc = parseManifestDocument(ref.canonical, fetched.bytes, fetched.contentType);
      if (doc.kind !== 'manifest') throw new InvalidImageError(ref.canonical, `index entry ${chosen.digest} is itself an index`);
    };
    const chosen = topDoc.kind === 'index' ? selectPlatform(ref.canonical, topDoc.manifests, this.platform) : null;
    if (chosen) {
      manifestDigest = chosen.digest;
      if (!index.completeImage(manifestDigest)) await fetchPlatformManifest(chosen);
    }

    // The hold (an in-use marker naming the layers) comes before checking what is on disk.
    const known = index.completeImage(manifestDigest);
    const currentDoc = doc as ReturnType<typeof parseManifestDocument>;
    const layers = currentDoc.kind === 'manifest' ? currentDoc.layers.map((l) => l.digest) : (known?.layers.map((l) => l.digest) ?? []);
    this.retain(manifestDigest, layers);
    try {
      let image = known && index.onDisk(known) ? known : undefined;
      if (!image) {
        if (chosen && doc.kind !== 'manifest') await fetchPlatformManifest(chosen); // evicted by another process meanwhile
        image = await this.pullImage(index, client, target, manifestDigest, manifestBytes, doc);
      }
      const now = new Date().toISOString();
      const previous = index.ref(ref.canonical);
      await index.putRef({ reference: ref.canonical, digest: top.digest, manifestDigest, pulledAt: now, lastUsedAt: previous?.lastUsedAt ?? now, ...(viewer ? { privateTo: viewer } : {}) });
      this.opts.logger?.info(
        { image: ref.canonical, digest: top.digest, policy, layers: image.layers.length, ms: Math.round(performance.now() - started) },
        'image pulled',
      );
      return { ref, image, digest: top.digest };
    } catch (e) {
      this.releaseDigest(manifestDigest);
      throw e;
    }
  }

  private async pullImage(
    index: CacheIndex,
    client: RegistryClient,
    target: PullTarget,
    manifestDigest: string,
    manifestBytes: Buffer,
    doc: ReturnType<typeof parseManifestDocument>,
  ): Promise<ImageRecord> {
    if (doc.kind !== 'manifest') throw new InvalidImageError(target.image, 'expected an image manifest');
    const configBytes = await client.getBlobBytes(target, doc.config, this.opts.maxConfigBytes ?? DEFAULT_MAX_CONFIG);
    const config = parseImageConfig(target.image, configBytes, doc.layers.length);
    if (config.os !== undefined && config.os !== this.platform.os) {
      throw new InvalidImageError(target.image, `it is built for ${config.os}, this host runs ${this.platform.os}`);
    }
    const unique = [...new Map(doc.layers.map((l, i) => [l.digest, { layer: l, diffId: config.rootfs.diff_ids[i] ?? null }])).values()];
    for (const { layer } of unique) this.pinned.set(layer.digest, (this.pinned.get(layer.digest) ?? 0) + 1);
    try {
      await mapLimit(unique, this.opts.layerConcurrency ?? 4, ({ layer, diffId }) => this.ensureLayer(index, client, target, layer, diffId));
      return await this.recordImage(index, manifestDigest, manifestBytes, doc, configBytes, config);
    } finally {
      for (const { layer } of unique) {
        const left = (this.pinned.get(layer.digest) ?? 1) - 1;
        if (left > 0) this.pinned.set(layer.digest, left);
        else this.pinned.delete(layer.digest);
      }
    }
  }

  private async recordImage(
    index: CacheIndex,
    manifestDigest: string,
    manifestBytes: Buffer,
    doc: Extract<ReturnType<typeof parseManifestDocument>, { kind: 'manifest' }>,
    configBytes: Buffer,
    config: ReturnType<typeof parseImageConfig>,
  ): Promise<ImageRecord> {
    const image: ImageRecord = {
      manifestDigest,
      configDigest: doc.config.digest,
      layers: doc.layers.map((l): LayerRecord => ({ digest: l.digest, mediaType: l.mediaType, size: l.size })),
      config: toRuntimeConfig(config),
      platform: formatPlatform(this.platform),
    };
    await index.putBlob(manifestDigest, manifestBytes);
    await index.putBlob(doc.config.digest, configBytes);
    await index.putImage(image);
    return image;
  }

  private ensureLayer(index: CacheIndex, client: RegistryClient, target: PullTarget, layer: Descriptor, diffId: string | null): Promise<LayerMeta> {
    const present = index.layer(layer.digest);
    if (present && index.layerOnDisk(layer.digest)) return Promise.resolve(present);
    // Shared by the image pulls that need this layer from this registry; aborted once none of them
    // waits any more. Per registry: a slow or hostile registry serving a layer that another one
    // serves too must not hold that one's pulls (the cache is by digest, commits are atomic renames).
    return this.layerPulls.run(
      `${client.registry}\u0000${layer.digest}`,
      (signal) => {
        const shared: PullTarget = { ...target, signal };
        return withFileLock(
          index.lockPath(layer.digest, client.registry),
          async () => (await index.reloadLayer(layer.digest)) ?? client.withRetries(shared, () => this.pullLayer(index, client, shared, layer, diffId)),
          { signal },
        );
      },
      target.signal,
    );
  }

  private async pullLayer(index: CacheIndex, client: RegistryClient, target: PullTarget, layer: Descriptor, diffId: string | null): Promise<LayerMeta> {
    const compression = layerCompression(layer.mediaType);
    if (compression === null) throw new InvalidImageError(target.image, `layer ${layer.digest} has unsupported media type ${layer.mediaType}`);
    const started = performance.now();
    const dir = await index.tempDir('layer-');
    try {
      const stats = await unpackLayer(() => client.getBlob(target, layer), dir, {
        compression,
        diffId,
        limits: this.opts.unpackLimits ?? DEFAULT_UNPACK_LIMITS,
        fail: (detail) => new InvalidImageError(target.image, `layer ${layer.digest}: ${detail}`),
        ...(target.signal ? { signal: target.signal } : {}),
      });
      const meta: LayerMeta = { digest: layer.digest, unpackedBytes: stats.bytes, files: stats.files, opaqueDirs: stats.opaqueDirs };
      await index.commitLayer(dir, meta);
      if (stats.skipped.length) this.opts.logger?.warn({ layer: layer.digest, skipped: stats.skipped.slice(0, 20), count: stats.skipped.length }, 'layer entries skipped');
      this.opts.logger?.debug({ layer: layer.digest, bytes: layer.size, files: stats.files, ms: Math.round(performance.now() - started) }, 'layer unpacked');
      return meta;
    } catch (e) {
      await rm(dir, { recursive: true, force: true });
      throw e;
    }
  }

  private async client(registry: string, credentials: RegistryCredentials | undefined): Promise<RegistryClient> {
    const key = credentials ? credentialsKey(registry, credentials) : registry;
    const existing = this.clients.get(key);
    if (existing) return existing;
    const configured = credentials ?? this.opts.credentials?.[registry] ?? (await this.dockerCredentials()).get(registry);
    const mirrors: RegistryClient[] = [];
    for (const host of this.opts.mirrors?.[registry] ?? []) {
      const mirrorCredentials = this.opts.credentials?.[host] ?? (await this.dockerCredentials()).get(host);
      mirrors.push(this.newClient(host, { retry: MIRROR_RETRY, ...(mirrorCredentials ? { credentials: mirrorCredentials } : {}) }));
    }
    const client = this.newClient(registry, {
      mirrors,
      ...(configured ? { credentials: configured } : {}),
      ...(this.opts.retry ? { retry: this.opts.retry } : {}),
    });
    this.clients.set(key, client);
    return client;
  }

  /** A client for `registry` (a registry or a mirror) on its host's dispatcher. */
  private newClient(registry: string, extra: Partial<RegistryClientOptions>): RegistryClient {
    return new RegistryClient({
      registry,
      dispatcher: this.dispatchers.forHost(registry),
      otherOrigins: (url) => this.dispatchers.forHost(url.host),
      https: this.dispatchers.hasEntry(registry),
      insecureRegistries: this.opts.insecureRegistries ?? [],
      ...(this.opts.stall ? { stall: this.opts.stall } : {}),
      ...extra,
    });
  }

  private dockerCredentials(): Promise<Map<string, RegistryCredentials>> {
    const path = this.opts.dockerConfigPath;
    this.credentialsPromise ??= path ? loadDockerCredentials(path) : Promise.resolve(new Map());
    return this.credentialsPromise;
  }
}

/** '10 min', '90 s', '500 ms'. */
function formatMs(ms: number): string {
  if (ms >= 60_000 && ms % 60_000 === 0) return `${ms / 60_000} min`;
  return ms >= 1000 ? `${ms / 1000} s` : `${ms} ms`;
}

/** Identifies a job's own credentials for a registry without keeping them (cache visibility). */
function credentialsKey(registry: string, c: RegistryCredentials): string {
  return createHash('sha256').update([registry, c.username ?? '', c.password ?? '', c.identityToken ?? ''].join('\u0000')).digest('hex');
}
