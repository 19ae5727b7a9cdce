/**
 * The fleet as the API sees it when it places a job at submit time (api/src/submit-placement.ts):
 * the live hosts' room and which images each holds, read in the background (two round trips: the
 * capacity hash, beside it the best priority waiting on the shared queue, then every live host's
 * holds set in one pipeline) and used without waiting. It is
 * read every `refreshMs` while jobs are being submitted, and not at all once none was for `idleMs`
 * (an idle API sends nothing); a view older than `usableMs` (the first submission after a quiet
 * spell) is not used: that job goes to the shared queue. Between two reads, the jobs placed from
 * the view count against the hosts' room (`take`).
 */
import type { RedisClient } from '../redis.ts';
import type { RedisKeys } from '../redis-keys.ts';
import { liveHosts, takeRoom, type HostRoom } from './fleet-records.ts';

/** BullMQ's score of a prioritized entry: priority × 2^32 + the order it was added in. */
const PRIORITY_SCALE = 2 ** 32;

export interface FleetState {
  /** Live hosts with their room, less the jobs placed on them from this view. */
  hosts: HostRoom[];
  /** Image key → the hosts whose cache holds it. */
  holders: Map<string, Set<string>>;
  /** The best (lowest) priority waiting on the shared queue; null or absent: nothing waits there. */
  bestWaiting?: number | null;
}

export interface FleetSnapshotOptions {
  /** A host whose capacity entry is older than this is dead (the workers' heartbeat limit). */
  liveMs: number;
  /** Read every this many ms while in use (default 100). */
  refreshMs?: number;
  /** A view older than this is not used (default 1000). */
  usableMs?: number;
  /** No reads once current() was not called for this long (default 5000). */
  idleMs?: number;
  /**
   * The shared queue's waiting set (JobQueue.waitingKey), whose best priority is read beside the fleet,
   * over the queue's own connection (BullMQ's keys stay off the main one: test/e2e/hot-path.test.ts).
   */
  waiting?: { connection: RedisClient; key: string } | null;
  /** A failed read (the view stays as it was). */
  onError?: (err: Error) => void;
}

export class FleetSnapshot {
  private view: FleetState | null = null;
  private readAt = 0;
  private refreshing: Promise<void> | null = null;
  private usedAt = 0;
  private timer: NodeJS.Timeout | null = null;

  private readonly o: Required<FleetSnapshotOptions>;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    options: FleetSnapshotOptions,
  ) {
    this.o = { refreshMs: 100, usableMs: 1_000, idleMs: 5_000, onError: () => {}, waiting: null, ...options };
  }

  /** The view if fresh enough to place by; null = place nothing from it. Keeps the view refreshed for a while. */
  current(now = Date.now()): FleetState | null {
    this.usedAt = now;
    if (!this.timer) {
      void this.refresh();
      this.timer = setInterval(() => {
        if (Date.now() - this.usedAt > this.o.idleMs) this.stop();
        else void this.refresh();
      }, this.o.refreshMs);
      this.timer.unref();
    }
    return now - this.readAt <= this.o.usableMs ? this.view : null;
  }

  /** No more background reads (until the next current()). */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Count a job placed on `host` against its room until the next refresh. */
  take(host: string, memoryBytes: number): void {
    if (this.view) takeRoom(this.view.hosts, host, memoryBytes);
  }

  /** `host` has no slot left (Redis said so as a job was placed there): none in this view until the next refresh. */
  full(host: string): void {
    const h = this.view?.hosts.find((x) => x.id === host);
    if (h) h.slotsFree = 0;
  }

  /** Read the fleet now (one refresh at a time; callers during one share it). */
  refresh(): Promise<void> {
    this.refreshing ??= this.read()
      .catch((err: Error) => this.o.onError(err))
      .finally(() => (this.refreshing = null));
    return this.refreshing;
  }

  private async read(): Promise<void> {
    const startedAt = Date.now();
    const { waiting } = this.o;
    const [capacity, best] = await Promise.all([
      this.redis.hgetall(this.keys.workerCapacity()),
      waiting ? waiting.connection.zrange(waiting.key, 0, 0, 'WITHSCORES') : Promise.resolve([]),
    ]);
    const hosts = liveHosts(capacity, startedAt, this.o.liveMs);
    const holders = new Map<string, Set<string>>();
    if (hosts.length) {
      const pipe = this.redis.pipeline();
      for (const h of hosts) pipe.smembers(this.keys.workerHolds(h.id));
      const rows = ((await pipe.exec()) ?? []) as Array<[Error | null, string[] | null]>;
      rows.forEach(([err, images], i) => {
        if (err) throw err;
        for (const image of images ?? []) {
          let set = holders.get(image);
          if (!set) holders.set(image, (set = new Set()));
          set.add(hosts[i]!.id);
        }
      });
    }
    this.view = { hosts, holders, bestWaiting: best.length === 2 ? Math.floor(Number(best[1]) / PRIORITY_SCALE) : null };
    this.readAt = startedAt;
  }
}
