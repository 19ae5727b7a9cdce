/**
 * What placement knows of the other hosts, kept in Redis beside the worker directory ({workers}
 * slot, so each look-up is one pipeline, also on a Cluster):
 *   - capacity hash: worker id → free slots and memory, written (coalesced) whenever they change
 *     and at each heartbeat; an entry older than the heartbeat limit is a dead host's.
 *   - a set per image (canonical reference, and digest) of the workers whose cache holds it: a
 *     worker adds itself when it takes a job for an image it will pull, and its heartbeat compares
 *     its cache with what it published last and sends only the difference (pulls and evictions).
 *     At start and stop a worker leaves every set it was in (holds:<id> lists them).
 */
import type { Logger } from '../../../core/src/logger.ts';
import { encodeRoom, imageKeys, liveHosts, lookupKey, parseRoom, type CapacitySnapshot, type HostRoom } from '../../../core/src/placement/fleet-records.ts';
import type { RedisClient } from '../../../core/src/redis.ts';
import type { RedisKeys } from '../../../core/src/redis-keys.ts';

/** At most one write of this host's room per this many ms (trailing: the last change always goes out). */
const PUBLISH_MIN_MS = 20;

export class FleetView {
  private published = new Set<string>();
  private pendingCapacity = false;
  private publishedRoom = '';
  private publishedAt = 0;
  /** Recent look-ups by image, shared by the jobs decided on meanwhile (a burst of misses costs one round trip). */
  private readonly recent = new Map<string, { at: number; view: Promise<{ hosts: HostRoom[]; holders: Set<string> }> }>();

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    private readonly self: string,
    /** An entry not refreshed for this long is a dead host's (the heartbeat limit). */
    private readonly liveMs: number,
    private readonly logger: Logger,
  ) {}

  /** Leave every image set a previous process with this id was in (a crashed predecessor's cache may differ). */
  async reset(): Promise<void> {
    const held = await this.redis.smembers(this.keys.workerHolds(this.self));
    const pipe = this.redis.pipeline();
    for (const image of held) pipe.srem(this.keys.imageHolders(image), this.self);
    pipe.del(this.keys.workerHolds(this.self));
    await pipe.exec();
    this.published.clear();
  }

  /** At stop: out of the capacity hash and every image set. */
  async leave(): Promise<void> {
    await this.reset();
    await this.redis.hdel(this.keys.workerCapacity(), this.self);
  }

  /**
   * Publish this host's room soon: the changes of one turn of the event loop, and of the
   * PUBLISH_MIN_MS after a write, go out as one write (a job changes the room ~3 times: taken, slot
   * asked, slot given back; the API reads the fleet every 100 ms).
   */
  publishCapacity(snapshot: () => CapacitySnapshot): void {
    if (this.pendingCapacity) return;
    this.pendingCapacity = true;
    const wait = this.publishedAt + PUBLISH_MIN_MS - Date.now();
    const later = (fn: () => void) => (wait > 0 ? setTimeout(fn, wait) : setImmediate(fn));
    later(() => {
      this.pendingCapacity = false;
      this.publishCapacityNow(snapshot());
    });
  }

  /**
   * Publish this host's room now if it changed, ahead of any command sent after this call on the
   * same connection: before a placed job's hand-off is removed (HostQueues.taken), so that Redis,
   * where API copies check a placement against the host's slots and its pending hand-offs
   * (reserveHandoff-3.lua), never counts the job in neither.
   */
  publishCapacityNow(s: CapacitySnapshot): void {
    const room = `${s.slotsFree}/${s.slotsTotal}/${s.memoryFree}/${s.memoryTotal}`;
    const now = Date.now();
    // Unchanged room is written again only to stay live (the entry's time), not at every change signal.
    if (room === this.publishedRoom && now - this.publishedAt < this.liveMs / 4) return;
    this.publishedRoom = room;
    this.publishedAt = now;
    this.redis.hset(this.keys.workerCapacity(), this.self, encodeRoom(s, now)).catch((err: Error) => this.logger.debug({ err: err.message }, 'publishing capacity failed'));
  }

  /** This host is about to hold `reference` (it takes a job that pulls it): say so before the next heartbeat. */
  async willHold(reference: string): Promise<void> {
    const add = imageKeys(reference).filter((k) => !this.published.has(k));
    if (add.length) await this.apply(add, []);
  }

  /** look(), shared with the look-ups for the same image in the last `maxAgeMs`. */
  lookShared(reference: string, maxAgeMs: number): Promise<{ hosts: HostRoom[]; holders: Set<string> }> {
    const now = Date.now();
    const key = lookupKey(reference);
    const hit = this.recent.get(key);
    if (hit && now - hit.at <= maxAgeMs) return hit.view;
    if (this.recent.size > 1000) this.recent.clear();
    const view = this.look(reference, now);
    this.recent.set(key, { at: now, view });
    view.catch(() => this.recent.delete(key));
    return view;
  }

  /** Publish the difference between the cache's images and what was published last. */
  async syncImages(cached: ReadonlyArray<{ image: string; digest: string }>, pending: ReadonlySet<string> = new Set()): Promise<void> {
    const now = new Set(cached.flatMap((c) => imageKeys(c.image, c.digest)));
    for (const k of pending) now.add(k); // jobs pulling it right now
    const add = [...now].filter((k) => !this.published.has(k));
    const remove = [...this.published].filter((k) => !now.has(k));
    if (add.length || remove.length) await this.apply(add, remove);
  }

  private async apply(add: string[], remove: string[]): Promise<void> {
    // Recorded first: concurrent callers do not send the same change again (a failure is mended by the next sync).
    for (const k of add) this.published.add(k);
    for (const k of remove) this.published.delete(k);
    const pipe = this.redis.pipeline();
    for (const k of add) pipe.sadd(this.keys.imageHolders(k), this.self);
    for (const k of remove) pipe.srem(this.keys.imageHolders(k), this.self);
    if (add.length) pipe.sadd(this.keys.workerHolds(this.self), ...add);
    if (remove.length) pipe.srem(this.keys.workerHolds(this.self), ...remove);
    await pipe.exec();
  }

  /** Forget hosts silent for `afterMs` (crashed, never restarted): their capacity entry and image set memberships. Returns their ids. */
  async prune(afterMs: number, now = Date.now()): Promise<string[]> {
    const cap = await this.redis.hgetall(this.keys.workerCapacity());
    const gone = Object.entries(cap).filter(([, raw]) => now - (parseRoom(raw)?.at ?? 0) > afterMs).map(([id]) => id);
    for (const id of gone) {
      const held = await this.redis.smembers(this.keys.workerHolds(id));
      const pipe = this.redis.pipeline();
      for (const image of held) pipe.srem(this.keys.imageHolders(image), id);
      pipe.del(this.keys.workerHolds(id));
      pipe.hdel(this.keys.workerCapacity(), id);
      await pipe.exec();
    }
    return gone;
  }

  /** Live hosts other than this one with their room, and (given an image) which workers hold it. One round trip. */
  async look(reference?: string, now = Date.now()): Promise<{ hosts: HostRoom[]; holders: Set<string> }> {
    const pipe = this.redis.pipeline();
    pipe.hgetall(this.keys.workerCapacity());
    if (reference) pipe.smembers(this.keys.imageHolders(lookupKey(reference)));
    const rows = ((await pipe.exec()) ?? []) as Array<[Error | null, unknown]>;
    const [capErr, cap] = rows[0] ?? [new Error('no reply'), null];
    const [holdErr, holders] = rows[1] ?? [null, []];
    if (capErr) throw capErr;
    if (holdErr) throw holdErr;
    const hosts = liveHosts((cap ?? {}) as Record<string, string>, now, this.liveMs, this.self);
    return { hosts, holders: new Set(holders as string[]) };
  }
}
