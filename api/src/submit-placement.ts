/**
 * Queueing an accepted job where it will start soonest: when cache-aware placement is on, a live
 * host holds the job's image and has room, and nothing of the job's priority or better waits on the
 * shared queue (core/src/placement/choose-at-submit.ts, from a view read
 * in the background: fleet-snapshot.ts), straight on that host's own queue, with the same deadline
 * as a worker's hand-off (SBX_PLACEMENT_MAX_WAIT_MS, after which any worker's sweep sends it to the
 * shared queue); otherwise on the shared queue. Redis checks each placement against the host's
 * free slots and the hand-offs pending for it (HostQueues.placeOn: other API copies place too); one
 * it turns away goes to another host with room (chooseInstead), else to the shared queue. A job
 * placed here never changes hosts again before it runs (one hop at most), unless it is swept back.
 */
import type { Config } from '../../core/src/config.ts';
import { queuePriority, type JobQueue } from '../../core/src/job-queue.ts';
import type { Logger } from '../../core/src/logger.ts';
import type { ApiMetrics } from '../../core/src/metrics.ts';
import { chooseAtSubmit, chooseInstead } from '../../core/src/placement/choose-at-submit.ts';
import { FleetSnapshot, type FleetSnapshotOptions } from '../../core/src/placement/fleet-snapshot.ts';
import { HostQueues } from '../../core/src/placement/host-queues.ts';
import type { RedisClient } from '../../core/src/redis.ts';
import type { RedisKeys } from '../../core/src/redis-keys.ts';

export interface PlacementHints {
  image: string;
  memoryBytes: number;
}

export class SubmitPlacement {
  private readonly fleet: FleetSnapshot | null;
  private readonly hostQueues: HostQueues;

  constructor(
    private readonly queue: JobQueue,
    /** BullMQ's connection (the host queues are BullMQ queues) and a plain one (the fleet view, the hand-off deadlines). */
    queueConnection: RedisClient,
    redis: RedisClient,
    keys: RedisKeys,
    env: Pick<Config['env'], 'SBX_PLACEMENT_CACHE_AWARE' | 'SBX_PLACEMENT_MAX_WAIT_MS' | 'SBX_HEARTBEAT_MS'>,
    private readonly metrics: Pick<ApiMetrics, 'jobsPlaced'>,
    logger: Logger,
    /** How often the fleet view is re-read while in use (FleetSnapshot's default unless given). */
    fleetReads: Pick<FleetSnapshotOptions, 'refreshMs'> = {},
  ) {
    // Workers publish their room; a host silent for 5 heartbeats is dead (worker/src/main.ts).
    const liveMs = env.SBX_HEARTBEAT_MS * 5;
    const onError = (err: Error) => logger.debug({ err: err.message }, 'reading the fleet for placement failed; jobs go to the shared queue');
    this.fleet = env.SBX_PLACEMENT_CACHE_AWARE ? new FleetSnapshot(redis, keys, { ...fleetReads, liveMs, usableMs: Math.min(1_000, liveMs), onError, waiting: { connection: queueConnection, key: queue.waitingKey } }) : null;
    // The deadline and the entry over one connection: in that order, one round trip (host-queues.ts).
    this.hostQueues = new HostQueues(queueConnection, queueConnection, keys, env.SBX_PLACEMENT_MAX_WAIT_MS);
    for (const where of ['host', 'shared']) metrics.jobsPlaced.inc({ where }, 0);
  }

  /** Queue job `id`; returns the host whose queue it went to, or null for the shared queue. */
  async enqueue(id: string, priority: number, hints: PlacementHints): Promise<string | null> {
    const view = this.fleet?.current() ?? null;
    const to = chooseAtSubmit(view, hints.image, hints.memoryBytes, queuePriority(priority));
    if (to) {
      // Other API copies place from views of their own: Redis says whether `to` still has a slot, and
      // if not, another host with room is tried (chooseInstead), then the shared queue.
      if (await this.placeOn(to, id, priority, hints, 'image')) return to;
      this.fleet!.full(to);
      const instead = chooseInstead(view!, hints.image, hints.memoryBytes, to);
      if (instead && (await this.placeOn(instead.to, id, priority, hints, instead.holds ? 'image' : 'capacity'))) return instead.to;
    }
    await this.queue.add(id, priority, hints);
    this.metrics.jobsPlaced.inc({ where: 'shared' });
    return null;
  }

  private async placeOn(to: string, id: string, priority: number, hints: PlacementHints, reason: 'image' | 'capacity'): Promise<boolean> {
    this.fleet!.take(to, hints.memoryBytes);
    if (!(await this.hostQueues.placeOn(to, { id, ...hints, hops: 0, placed: 'submit', reason }, queuePriority(priority)))) return false;
    this.metrics.jobsPlaced.inc({ where: 'host' });
    return true;
  }

  /** Whether job `id`'s first queue entry waits: on the shared queue or on a host's own. */
  async isWaiting(id: string): Promise<boolean> {
    if (await this.queue.queue.getJob(id)) return true;
    return this.hostQueues.holds(id);
  }

  async close(): Promise<void> {
    this.fleet?.stop();
    await this.hostQueues.close();
  }
}
