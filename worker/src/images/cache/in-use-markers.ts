/**
 * Which images are in use, across every process sharing one cache directory on this host.
 *
 * An ImageStore that holds an image (a job's acquisition, or a pull in progress) keeps one marker
 * file `<root>/inuse/<manifest hex>/<pid>-<store token>` listing the image's layer digests; it is
 * written (temp + rename) when the store's hold count goes 0 → 1 and removed at 1 → 0. Eviction, GC
 * and evict() in any process treat an image (and the layers) named by a live marker as in use.
 *
 * A marker is stale when it was written on this host by a process that no longer runs (same pid
 * with another start time counts as gone: pid reuse); stale markers are removed when read. Markers
 * written on another host (a cache on a network filesystem) are always taken as live.
 *
 * Race with an evicting process: the holder writes its marker and only then checks that the image
 * record and layer metas are still on disk (CacheIndex.onDisk); the evictor deletes those records
 * first, then reads the markers again and restores whatever gained a holder meanwhile, and only then
 * deletes layer directories. Either the holder sees a record missing (and pulls again), or the
 * evictor sees the marker.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { readdir, readFile, rm, rmdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { processGone, SELF_START } from '../../process-alive.ts';
import { HoldCounts } from './hold-counts.ts';

const HOST = hostname();

interface MarkerContent {
  pid: number;
  host: string;
  /** The process's start time (field 22 of /proc/<pid>/stat), null where /proc is unavailable. */
  start: string | null;
  layers: string[];
}

function isStale(marker: MarkerContent): boolean {
  return marker.host === HOST && processGone(marker.pid, marker.start);
}

const hex = (digest: string) => digest.slice(digest.indexOf(':') + 1);

export interface LiveHolders {
  /** Manifest digests with a live marker. */
  images: Set<string>;
  /** Layer digests named by a live marker. */
  layers: Set<string>;
}

/** This store's holds, mirrored to marker files. Synchronous: release() must be. */
export class InUseMarkers {
  private readonly counts = new HoldCounts();
  private readonly dir: string;
  private readonly name: string;

  constructor(root: string) {
    this.dir = join(root, 'inuse');
    this.name = `${process.pid}-${randomBytes(6).toString('hex')}`;
  }

  count(manifestDigest: string): number {
    return this.counts.count(manifestDigest);
  }

  has(manifestDigest: string): boolean {
    return this.counts.has(manifestDigest);
  }

  digests(): string[] {
    return this.counts.keys();
  }

  /** Throws (the hold not taken) when the marker cannot be written: ENOSPC or EDQUOT on a full disk. */
  hold(manifestDigest: string, layers: readonly string[]): void {
    if (!this.counts.has(manifestDigest)) this.write(manifestDigest, layers);
    this.counts.add(manifestDigest);
  }

  release(manifestDigest: string): void {
    if (this.counts.remove(manifestDigest) === 0) rmSync(this.path(manifestDigest), { force: true });
  }

  /** Drops every hold of this store (it is closing). */
  releaseAll(): void {
    for (const digest of this.counts.keys()) rmSync(this.path(digest), { force: true });
    this.counts.clear();
  }

  private path(manifestDigest: string): string {
    return join(this.dir, hex(manifestDigest), this.name);
  }

  private write(manifestDigest: string, layers: readonly string[]): void {
    const content: MarkerContent = { pid: process.pid, host: HOST, start: SELF_START, layers: [...layers] };
    const path = this.path(manifestDigest);
    const tmp = join(this.dir, hex(manifestDigest), `.${this.name}.tmp`);
    for (let attempt = 0; ; attempt++) {
      try {
        mkdirSync(join(this.dir, hex(manifestDigest)), { recursive: true, mode: 0o700 });
        writeFileSync(tmp, JSON.stringify(content), { mode: 0o600 });
        renameSync(tmp, path);
        return;
      } catch (e) {
        rmSync(tmp, { force: true }); // a full disk may have let the file be made but not written
        // A sweeper in another process may remove the (empty) directory between mkdir and write.
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 5) throw e;
      }
    }
  }
}

/** Every live marker under `root` (all processes of this host, this one included); sweeps stale ones. */
export async function liveHolders(root: string): Promise<LiveHolders> {
  const dir = join(root, 'inuse');
  const live: LiveHolders = { images: new Set(), layers: new Set() };
  const digestDirs = await readdir(dir).catch(() => [] as string[]);
  for (const digestHex of digestDirs) {
    if (!/^[0-9a-f]{64}$/.test(digestHex)) continue;
    const sub = join(dir, digestHex);
    const names = await readdir(sub).catch(() => [] as string[]);
    let kept = 0;
    for (const name of names) {
      if (name.startsWith('.')) {
        kept++; // a marker being written
        continue;
      }
      let marker: MarkerContent | null = null;
      try {
        marker = JSON.parse(await readFile(join(sub, name), 'utf8')) as MarkerContent;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // released meanwhile
        // Unreadable: count the image as held (its layers come from the image record).
      }
      if (marker && isStale(marker)) {
        await rm(join(sub, name), { force: true });
        continue;
      }
      kept++;
      live.images.add(`sha256:${digestHex}`);
      for (const layer of marker?.layers ?? []) if (typeof layer === 'string') live.layers.add(layer);
    }
    if (kept === 0) await rmdir(sub).catch(() => {});
  }
  return live;
}
