/**
 * A worker cut off from Redis stops its own jobs. Once its heartbeat key has expired (SBX_HEARTBEAT_MS
 * × 5 after the last heartbeat that landed), any other worker's janitor may finish its jobs as
 * `worker_lost`; nothing this worker records from then on counts. So jobs it still ran would be a
 * lie in the job record and a leak of the host's resources (a partitioned host never hears that its
 * jobs were declared lost). The watchdog reads this worker's own heartbeat key on a connection of its
 * own, every heartbeat interval, and remembers when the key expires as last seen. Past that moment
 * without a fresh sighting (Redis unreachable, or reachable but our heartbeats not landing), Redis is
 * lost: every job is killed (each ends worker_lost, as at shutdown), the queue consumer pauses, and
 * it is logged. When the key is seen alive again (a heartbeat landed), the worker takes jobs again.
 */
import { performance } from 'node:perf_hooks';
import type { Env } from '../../core/src/config.ts';
import type { Logger } from '../../core/src/logger.ts';
import type { WorkerMetrics } from '../../core/src/metrics.ts';
import { connectRedis, type RedisClient } from '../../core/src/redis.ts';
import type { RedisKeys } from '../../core/src/redis-keys.ts';

export interface WatchdogOptions {
  /** A connection of its own: a heartbeat stuck on another must not hide the outage. */
  redis: RedisClient;
  /** This worker's heartbeat key (WorkerDirectory.heartbeat writes it with a TTL). */
  key: string;
  /** How often to look (the heartbeat interval). */
  intervalMs: number;
  /** How long the key lives after a heartbeat (the janitor's limit), assumed for the one just written at start. */
  limitMs: number;
  jobs: { readonly runningIds: readonly string[]; killAll(): void };
  /** The queue consumer (a BullMQ Worker): paused while Redis is lost. */
  queue: { pause(doNotWaitActive?: boolean): Promise<void>; resume(): void };
  logger: Logger;
  /** sbx_worker_redis_unreachable_total (times lost) and sbx_worker_redis_lost (1 while lost). */
  metrics?: Pick<WorkerMetrics, 'redisUnreachable' | 'redisLost'>;
}

export class RedisWatchdog {
  private expiresAt: number;
  private probing = false;
  private lostAt: number | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly opts: WatchdogOptions) {
    this.expiresAt = performance.now() + opts.limitMs;
    opts.metrics?.redisLost.set(0);
  }

  /** Whether Redis counts as lost right now (jobs killed, queue paused). */
  get lost(): boolean {
    return this.lostAt !== null;
  }

  start(): this {
    this.timer = setInterval(() => this.tick(), this.opts.intervalMs);
    this.timer.unref();
    this.tick();
    return this;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private tick(): void {
    if (!this.probing) this.probe();
    if (performance.now() <= this.expiresAt) return;
    if (this.lostAt === null) this.onLost();
    else if (this.opts.jobs.runningIds.length) this.opts.jobs.killAll(); // one taken meanwhile: it would be lost too
  }

  /** PTTL of the key; while a probe hangs (a dead link) no other is sent. */
  private probe(): void {
    this.probing = true;
    const sentAt = performance.now();
    this.opts.redis.pttl(this.opts.key).then(
      (ttl) => {
        this.probing = false;
        if (ttl <= 0) return; // gone (expired, or removed by a janitor): our heartbeats are not landing
        this.expiresAt = Math.max(this.expiresAt, sentAt + ttl); // the server read it after we sent: never later than this
        // Back only on a heartbeat that landed since: a probe that hung through the outage may answer
        // with a key that has expired by now, and the key from before the outage may still be there
        // with moments left (its expiry is known only to within a round trip). A fresh heartbeat
        // leaves most of its life; taking jobs on an old key would lose them again within moments.
        if (this.lostAt !== null && this.expiresAt - performance.now() >= this.opts.limitMs / 2) this.onBack();
      },
      () => {
        this.probing = false; // connection error: Redis unreachable, nothing learnt
      },
    );
  }

  private onLost(): void {
    this.lostAt = performance.now();
    this.opts.metrics?.redisUnreachable.inc();
    this.opts.metrics?.redisLost.set(1);
    const jobs = [...this.opts.jobs.runningIds];
    this.opts.logger.error({ jobs, limitMs: this.opts.limitMs }, 'cannot reach Redis for longer than the heartbeat limit: killing this worker\'s jobs (they end worker_lost) and taking no new ones until Redis is back');
    this.opts.jobs.killAll();
    this.opts.queue.pause(true).catch((err: Error) => this.opts.logger.warn({ err: err.message }, 'pausing the queue consumer failed'));
  }

  private onBack(): void {
    const lostMs = Math.round(performance.now() - this.lostAt!);
    this.lostAt = null;
    this.opts.metrics?.redisLost.set(0);
    this.opts.logger.warn({ lostMs }, 'Redis reachable again (our heartbeat landed): taking jobs again');
    this.opts.queue.resume();
  }
}

/** main.ts's wiring: the watchdog on its own connection, watching this worker's heartbeat key. */
export function watchRedis(o: { env: Env; keys: RedisKeys; workerId: string; jobs: WatchdogOptions['jobs']; queue: WatchdogOptions['queue']; logger: Logger; metrics?: WatchdogOptions['metrics'] }): RedisWatchdog {
  const redis = connectRedis(o.env, 'worker-watchdog');
  redis.on('error', () => {}); // the outage is what it watches for; the other connections log it
  return new RedisWatchdog({
    redis, key: o.keys.worker(o.workerId), intervalMs: o.env.SBX_HEARTBEAT_MS, limitMs: o.env.SBX_HEARTBEAT_MS * 5,
    jobs: o.jobs, queue: o.queue, logger: o.logger, metrics: o.metrics,
  }).start();
}
