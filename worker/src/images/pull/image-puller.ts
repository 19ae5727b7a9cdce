/**
 * One pull: manifest (platform chosen from an index), config, then the layers, several at a time,
 * each downloaded, decompressed, verified and unpacked as one stream and committed to the cache by
 * rename (P31, P32). Concurrent pulls of one layer from one registry share one download (in this
 * process: single-flight; across processes: a file lock).
 */
import { rm } from 'node:fs/promises';
import type { Logger } from 'pino';
import { ImagePullFailedError, InvalidImageError } from '../../../../core/src/errors.ts';
import { manifestReference, type ImageReference } from '../../../../core/src/image-ref.ts';
import { toRuntimeConfig } from '../../launch/image-config.ts';
import { visibleTo, type CacheIndex, type ImageRecord, type LayerMeta, type LayerRecord } from '../cache/cache-index.ts';
import { withFileLock } from '../cache/file-lock.ts';
import type { HoldCounts } from '../cache/hold-counts.ts';
import type { InUseMarkers } from '../cache/in-use-markers.ts';
import { DEFAULT_UNPACK_LIMITS, unpackLayer, type UnpackLimits } from '../layers/layer-unpack.ts';
import { layerForWriter } from './writer-choice.ts';
import { formatPlatform, parseImageConfig, parseManifestDocument, selectPlatform, type Descriptor, type Platform } from '../registry/manifest.ts';
import { layerCompression } from '../registry/media-types.ts';
import type { RegistryCredentials } from '../registry/registry-auth.ts';
import type { PullTarget, RegistryClient } from '../registry/registry-client.ts';
import type { RegistryClients } from '../registry/registry-clients.ts';
import type { Requester } from '../tenant-shares.ts';

/** A pull's target, and whose pull it is (its layers' share of the unpack threads: ../tenant-shares.ts). */
type PullJob = PullTarget & { requester?: Requester };
import { SingleFlight } from './single-flight.ts';

export type PullPolicy = 'if-not-present' | 'always' | 'never';

export interface ImagePullerOptions {
  /** Layers downloaded and unpacked at the same time (per store). Default 4. */
  layerConcurrency?: number;
  maxManifestBytes?: number;
  maxConfigBytes?: number;
  unpackLimits?: UnpackLimits;
}

interface PullerContext extends ImagePullerOptions {
  platform: Platform;
  logger?: Logger | undefined;
  clients: RegistryClients;
  /** The store's holds: a pull holds its image while it runs, and returns it held. */
  markers: InUseMarkers;
  /** Layers of pulls in progress (count per digest): GC must not remove them. */
  pinned: HoldCounts;
}

export interface PullResult {
  ref: ImageReference;
  image: ImageRecord;
  digest: string;
}

const DEFAULT_MAX_MANIFEST = 4 * 1024 * 1024;
const DEFAULT_MAX_CONFIG = 8 * 1024 * 1024;

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

export class ImagePuller {
  private readonly layerPulls = new SingleFlight<LayerMeta>();
  /** Fetches of a cached layer's blob by a pull that may not use it yet (proveLayers), shared per registry and viewer. */
  private readonly layerProofs = new SingleFlight<void>();
  /** Names the runs of pulls that fetch a layer themselves after a download they joined failed (ensureLayer). */
  private ownLayerPulls = 0;

  constructor(private readonly ctx: PullerContext) {}

  /** Resolves when no layer download is in progress (the store closes). */
  idle(): Promise<void> {
    return Promise.all([this.layerPulls.idle(), this.layerProofs.idle()]).then(() => undefined);
  }

  /**
   * Pulls `ref` into the cache (what is there already is not fetched again) and records the
   * reference; `viewer` (a hash of the job's own credentials) makes the record private to them.
   * Returns the image held (InUseMarkers): the caller releases it.
   */
  async pull(index: CacheIndex, ref: ImageReference, policy: PullPolicy, credentials: RegistryCredentials | undefined, viewer: string | undefined, signal: AbortSignal, requester: Requester = {}): Promise<PullResult> {
    const started = performance.now();
    const client = await this.ctx.clients.get(ref.registry, credentials);
    const target: PullJob = { image: ref.canonical, repository: ref.repository, signal, requester };
    const maxManifest = this.ctx.maxManifestBytes ?? DEFAULT_MAX_MANIFEST;
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
    const chosen = topDoc.kind === 'index' ? selectPlatform(ref.canonical, topDoc.manifests, this.ctx.platform) : null;
    if (chosen) {
      manifestDigest = chosen.digest;
      if (!index.completeImage(manifestDigest)) await fetchPlatformManifest(chosen);
    }

    // The hold (an in-use marker naming the layers) comes before checking what is on disk.
    const known = index.completeImage(manifestDigest);
    const currentDoc = doc as ReturnType<typeof parseManifestDocument>;
    const layers = currentDoc.kind === 'manifest' ? currentDoc.layers.map((l) => l.digest) : (known?.layers.map((l) => l.digest) ?? []);
    let held = false;
    try {
      this.ctx.markers.hold(manifestDigest, layers); // a full disk may refuse its marker: the error below
      held = true;
      let image = known && index.onDisk(known) ? known : undefined;
      if (!image) {
        if (chosen && doc.kind !== 'manifest') await fetchPlatformManifest(chosen); // evicted by another process meanwhile
        image = await this.pullImage(index, client, target, manifestDigest, manifestBytes, doc, viewer);
      }
      await this.proveConfig(index, client, target, image, viewer);
      await this.proveLayers(index, client, target, image, viewer);
      const now = new Date().toISOString();
      const previous = index.ref(ref.canonical);
      await index.putRef({ reference: ref.canonical, digest: top.digest, manifestDigest, pulledAt: now, lastUsedAt: previous?.lastUsedAt ?? now, ...(viewer ? { privateTo: viewer } : {}) });
      this.ctx.logger?.info(
        { image: ref.canonical, digest: top.digest, policy, layers: image.layers.length, ms: Math.round(performance.now() - started) },
        'image pulled',
      );
      return { ref, image, digest: top.digest };
    } catch (e) {
      if (held) this.ctx.markers.release(manifestDigest);
      throw asDiskFull(ref.canonical, e);
    }
  }

  private async pullImage(
    index: CacheIndex,
    client: RegistryClient,
    target: PullJob,
    manifestDigest: string,
    manifestBytes: Buffer,
    doc: ReturnType<typeof parseManifestDocument>,
    viewer: string | undefined,
  ): Promise<ImageRecord> {
    if (doc.kind !== 'manifest') throw new InvalidImageError(target.image, 'expected an image manifest');
    const manifest = doc;
    // The config and the layers download at once: a layer needs its diffID only once its blob is
    // read (a registry round trip less per pull). A config that fails ends this pull's wait for its
    // layers. A layer another pull waits for too goes on. Each pull checks every layer's diffID
    // against its own config (checkDiffId), also a layer another pull fetched (single-flight.ts) or
    // cached: the layer records the sha256 of its tar.
    const layersAbort = new AbortController();
    const configReady = (async () => {
      const configBytes = await client.getBlobBytes(target, manifest.config, this.ctx.maxConfigBytes ?? DEFAULT_MAX_CONFIG);
      const config = parseImageConfig(target.image, configBytes, manifest.layers.length);
      if (config.os !== undefined && config.os !== this.ctx.platform.os) {
        throw new InvalidImageError(target.image, `it is built for ${config.os}, this host runs ${this.ctx.platform.os}`);
      }
      return { configBytes, config };
    })();
    configReady.catch((e: unknown) => layersAbort.abort(e));
    const diffIdAt = (i: number) => () => configReady.then(({ config }) => config.rootfs.diff_ids[i] ?? null, () => null);
    const layerTarget: PullJob = { ...target, signal: target.signal ? AbortSignal.any([target.signal, layersAbort.signal]) : layersAbort.signal };
    const unique = [...new Map(manifest.layers.map((l, i) => [l.digest, { layer: l, at: i }])).values()];
    for (const { layer } of unique) this.ctx.pinned.add(layer.digest);
    try {
      // From the in-memory index (ensureLayer checks the disk once for each): a layer another process
      // evicted meanwhile only makes the writer thread's choice a little off.
      const missing = unique.filter(({ layer }) => !index.layer(layer.digest)).map(({ layer }) => layer);
      const writerFor = layerForWriter(missing);
      const layersDone = mapLimit(unique, this.ctx.layerConcurrency ?? 4, async ({ layer, at }) => {
        const meta = await this.ensureLayer(index, client, layerTarget, layer, diffIdAt(at), layer.digest === writerFor, viewer);
        await checkDiffId(target.image, layer, meta, diffIdAt(at));
        return meta;
      });
      const [config, layers] = await Promise.allSettled([configReady, layersDone]);
      if (config.status === 'rejected') throw config.reason;
      if (layers.status === 'rejected') throw layers.reason;
      return await this.recordImage(index, manifestDigest, manifestBytes, manifest, config.value.configBytes, config.value.config, viewer);
    } finally {
      for (const { layer } of unique) this.ctx.pinned.remove(layer.digest);
    }
  }

  private async recordImage(
    index: CacheIndex,
    manifestDigest: string,
    manifestBytes: Buffer,
    doc: Extract<ReturnType<typeof parseManifestDocument>, { kind: 'manifest' }>,
    configBytes: Buffer,
    config: ReturnType<typeof parseImageConfig>,
    viewer: string | undefined,
  ): Promise<ImageRecord> {
    const image: ImageRecord = {
      manifestDigest,
      configDigest: doc.config.digest,
      layers: doc.layers.map((l): LayerRecord => ({ digest: l.digest, mediaType: l.mediaType, size: l.size })),
      config: toRuntimeConfig(config),
      platform: formatPlatform(this.ctx.platform),
    };
    await index.putBlob(manifestDigest, manifestBytes);
    await index.putBlob(doc.config.digest, configBytes);
    await index.recordImage(image, viewer);
    return index.image(manifestDigest) ?? image;
  }

  /**
   * The same for a cached image whose config only other tenants' credentials fetched: its record is
   * found by the platform manifest's digest, which an index of the tenant's own registry can name
   * without serving the manifest. The config (the job's Env, Entrypoint, Cmd…) is fetched from this
   * pull's registry, digest and size verified, before the image is used.
   */
  private async proveConfig(index: CacheIndex, client: RegistryClient, target: PullJob, image: ImageRecord, viewer: string | undefined): Promise<void> {
    if (visibleTo(image, viewer)) return;
    const size = await index.blobSize(image.configDigest);
    if (size === undefined) throw new ImagePullFailedError(target.image, `its cached config ${image.configDigest} is gone; the job may be tried again`);
    await client.getBlobBytes(target, { digest: image.configDigest, size }, size);
    await index.shareImage(image.manifestDigest, viewer);
    this.ctx.logger?.info({ image: target.image, config: image.configDigest }, 'a cached image config fetched with other credentials: its blob was fetched again before use');
  }

  /**
   * A cached layer that only other tenants' credentials fetched (LayerMeta.privateTo) is not handed
   * to this pull on the strength of its digest alone: a registry of the tenant's own could name any
   * digest in a manifest. The pull fetches the blob from its registry (digest and size verified, the
   * bytes dropped: they are the cached layer's), and from then on may use the layer.
   */
  private async proveLayers(index: CacheIndex, client: RegistryClient, target: PullJob, image: ImageRecord, viewer: string | undefined): Promise<void> {
    for (const layer of image.layers) {
      const meta = index.layer(layer.digest);
      if (!meta || visibleTo(meta, viewer)) continue;
      await this.layerProofs.run(
        `${client.registry}\u0000${viewer ?? ''}\u0000${layer.digest}`,
        (signal) => client.withRetries({ ...target, signal }, async () => {
          const blob = await client.getBlob({ ...target, signal }, layer);
          for await (const _ of blob); // verified by digest and size as it streams
        }),
        target.signal,
      );
      await index.shareLayer(layer.digest, viewer);
      this.ctx.logger?.info({ image: target.image, layer: layer.digest }, 'a cached layer fetched with other credentials: its blob was fetched again before use');
    }
  }

  private async ensureLayer(index: CacheIndex, client: RegistryClient, target: PullJob, layer: Descriptor, diffId: () => Promise<string | null>, writerThread: boolean, viewer: string | undefined): Promise<LayerMeta> {
    const present = index.layer(layer.digest);
    if (present && index.layerOnDisk(layer.digest)) return present;
    // Shared by the image pulls that need this layer from this registry; aborted once none of them
    // waits any more. Per registry: a slow or hostile registry serving a layer that another one
    // serves too must not hold that one's pulls (the cache is by digest, commits are atomic renames).
    const key = `${client.registry}\u0000${layer.digest}`;
    const work = (signal: AbortSignal) => {
      const shared: PullJob = { ...target, signal };
      return withFileLock(
        index.lockPath(layer.digest, client.registry),
        async () => (await index.reloadLayer(layer.digest)) ?? client.withRetries(shared, () => this.pullLayer(index, client, shared, layer, diffId, writerThread, viewer)),
        { signal },
      );
    };
    let started = false;
    try {
      return await this.layerPulls.run(key, (signal) => {
        started = true;
        return work(signal);
      }, target.signal);
    } catch (e) {
      if (started || target.signal?.aborted) throw e;
      // The download this pull joined was another pull's, and its failure may be that pull's alone
      // (its config's diffID; its repository or credentials at the registry), in an error naming
      // that pull's image. This pull fetches the layer itself, in a run no other pull joins (the
      // file lock still waits for any other download of it, and takes what that one committed).
      this.ctx.logger?.info({ image: target.image, layer: layer.digest }, 'a shared layer download failed: fetching it again for this pull');
      return await this.layerPulls.run(`${key}\u0000own ${++this.ownLayerPulls}`, work, target.signal);
    }
  }

  private async pullLayer(index: CacheIndex, client: RegistryClient, target: PullJob, layer: Descriptor, diffId: () => Promise<string | null>, writerThread: boolean, viewer: string | undefined): Promise<LayerMeta> {
    const compression = layerCompression(layer.mediaType);
    if (compression === null) throw new InvalidImageError(target.image, `layer ${layer.digest} has unsupported media type ${layer.mediaType}`);
    const started = performance.now();
    const dir = await index.tempDir('layer-');
    try {
      const stats = await unpackLayer(() => client.getBlob(target, layer), dir, {
        compression,
        diffId,
        limits: this.ctx.unpackLimits ?? DEFAULT_UNPACK_LIMITS,
        fail: (detail) => new InvalidImageError(target.image, `layer ${layer.digest}: ${detail}`),
        ...(target.signal ? { signal: target.signal } : {}),
        ...(target.requester ? { requester: target.requester } : {}),
        writerThread,
      });
      // What each pull checks its own config's diffID against (checkDiffId); an uncompressed layer's is its blob digest.
      const tarDigest = compression === 'none' ? layer.digest : stats.diffId;
      const meta: LayerMeta = { digest: layer.digest, unpackedBytes: stats.bytes, files: stats.files, opaqueDirs: stats.opaqueDirs, ...(tarDigest ? { diffId: tarDigest } : {}), ...(viewer ? { privateTo: [viewer] } : {}) };
      await index.commitLayer(dir, meta);
      if (stats.skipped.length) this.ctx.logger?.warn({ layer: layer.digest, skipped: stats.skipped.slice(0, 20), count: stats.skipped.length }, 'layer entries skipped');
      this.ctx.logger?.debug({ layer: layer.digest, bytes: layer.size, files: stats.files, ms: Math.round(performance.now() - started) }, 'layer unpacked');
      return meta;
    } catch (e) {
      await rm(dir, { recursive: true, force: true });
      throw e;
    }
  }
}

/**
 * A layer of `image` is what its own config says: the sha256 of its tar (recorded when it was
 * unpacked, by this pull or another) is the config's diffID for it. A layer cached before the
 * sha256 was recorded is taken on its blob digest, as before.
 */
async function checkDiffId(image: string, layer: Descriptor, meta: LayerMeta, diffId: () => Promise<string | null>): Promise<void> {
  const actual = meta.diffId ?? (layerCompression(layer.mediaType) === 'none' ? layer.digest : undefined);
  if (actual === undefined) return;
  const expected = await diffId();
  if (expected !== null && expected !== actual) throw new InvalidImageError(image, `layer ${layer.digest}: a layer's uncompressed content has digest ${actual}, its config says ${expected}`);
}

/** The cache's file system is full, or the worker's quota on it is used up. */
function outOfDisk(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/** `e` as the error a pull (or a hold on a cached image) ends with when the cache's disk is full, else `e` itself. */
export function asDiskFull(reference: string, e: unknown): unknown {
  return outOfDisk(e) ? new ImagePullFailedError(reference, `the worker has no disk space left for it (${(e as NodeJS.ErrnoException).code})`, { cause: e, retryable: false }) : e;
}

/** A pull failed because the cache's disk is full (the error pull() throws then). */
export function isDiskFull(e: unknown): boolean {
  return e instanceof ImagePullFailedError && outOfDisk(e.cause);
}
