/**
 * Keeps each tenant's job index (`<p>:tenant:<t>:jobs`, ids by creation ms) bounded by retention. Job
 * records expire by TTL; their index entries cannot (a zset member has no TTL), and listing removes only
 * the ones it happens to read, so without this the index grows by one entry per job for ever.
 *
 * Every `every`-th job this process creates for a tenant, the next `batch` entries older than the
 * retention (SBX_JOB_TTL_SECONDS: younger ones cannot have expired, a record lives at least that long
 * after its creation) are checked from a cursor kept here: those whose record is gone are removed,
 * those whose record lives (a long job) are stepped over; at the retention boundary the cursor starts
 * again from the oldest. So the sweep walks `batch / every` (4) entries per job created, faster than
 * they come, and a long-lived job at the head never blocks it. Several API processes sweep on their
 * own (removing a gone id twice is harmless). It runs after the creation, never on its path; an error
 * is dropped (the next sweep tries again).
 *
 * This sweeps only while the tenant submits. The index of a tenant that stops goes by its TTL: each
 * creation pushes it past the new record's longest life, in the same script as the entry
 * (core/src/lua/indexJob-1.lua, JobStore.sendCreate), so it expires shortly after its last record.
 */
import type { RedisClient } from './redis.ts';
import type { RedisKeys } from './redis-keys.ts';

interface Cursor {
  /** Creation ms of the last entry checked; -Infinity = start from the oldest. */
  score: number;
  created: number;
  running: Promise<number> | null;
}

export class TenantIndexSweeper {
  private readonly cursors = new Map<string, Cursor>();

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    private readonly retentionSeconds: number,
    private readonly every = 16,
    private readonly batch = 64,
  ) {}

  /** Called once per job created; sometimes starts a sweep of the tenant's index (not awaited). */
  created(tenant: string): void {
    let cursor = this.cursors.get(tenant);
    if (!cursor) this.cursors.set(tenant, (cursor = { score: -Infinity, created: 0, running: null }));
    if (++cursor.created % this.every !== 0 || cursor.running) return;
    const c = cursor;
    c.running = this.sweep(tenant, c)
      .catch(() => 0)
      .finally(() => (c.running = null));
  }

  /** One step over the tenant's index; resolves with the entries removed. */
  private async sweep(tenant: string, cursor: Cursor): Promise<number> {
    const index = this.keys.tenantJobs(tenant);
    const boundary = Date.now() - this.retentionSeconds * 1000;
    const min = cursor.score === -Infinity ? '-inf' : `(${cursor.score}`;
    const raw = await this.redis.zrangebyscore(index, min, boundary, 'WITHSCORES', 'LIMIT', 0, this.batch);
    const ids: string[] = [];
    for (let i = 0; i < raw.length; i += 2) ids.push(raw[i]!);
    // Past the last old entry: the next sweep starts from the oldest again.
    cursor.score = ids.length < this.batch ? -Infinity : Number(raw[raw.length - 1]);
    if (!ids.length) return 0;
    // One EXISTS per record (they live in other Cluster slots than the index); sent together.
    const alive = await Promise.all(ids.map((id) => this.redis.exists(this.keys.jobState(id))));
    const gone = ids.filter((_, i) => alive[i] === 0);
    if (gone.length) await this.redis.zrem(index, ...gone);
    return gone.length;
  }
}
