/**
 * Live workers: each worker writes its info under a key with a TTL of a few heartbeats and keeps a
 * set of the jobs it is running. A job whose worker's key has expired has lost its worker. A dead
 * worker leaves the index only once its jobs are settled, and only while it is still dead: both
 * checks and the removal are one Lua script (a heartbeat landing in between is never undone).
 */
import { z } from 'zod';
import { defineScripts, luaScript } from './redis-scripts.ts';
import { replyCode } from './redis-not-now.ts';
import type { RedisClient } from './redis.ts';
import type { RedisKeys } from './redis-keys.ts';

const CachedImageInfo = z.object({ image: z.string(), digest: z.string(), sizeBytes: z.number(), lastUsedAt: z.string() });
export type CachedImageInfo = z.infer<typeof CachedImageInfo>;

/**
 * A worker's info, as its heartbeat writes it and the API reads it back: what another version wrote
 * may lack a field this one has, or hold one it lacks (README, "Mixed versions": fields are only
 * added). A missing or unreadable field reads as empty; an entry without an id, or not JSON, is left
 * out of the list (before, one such entry made GET /v1/workers and GET /v1/images answer 500).
 */
const StoredWorkerInfo = z.object({
  id: z.string(),
  host: z.string().catch(''),
  pid: z.number().catch(0),
  slotsTotal: z.number().catch(0),
  slotsFree: z.number().catch(0),
  runningJobs: z.array(z.string()).catch([]),
  cachedBytes: z.number().catch(0),
  images: z.array(CachedImageInfo).catch([]),
  cgroup: z.string().catch(''),
  startedAt: z.string().catch(''),
  lastHeartbeat: z.string().catch(''),
});
export type WorkerInfo = z.infer<typeof StoredWorkerInfo>;

/** A worker's info key as WorkerInfo, or null when it cannot be read as one. */
export function readWorkerInfo(raw: string): WorkerInfo | null {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return null;
  }
  const parsed = StoredWorkerInfo.safeParse(value);
  return parsed.success ? parsed.data : null;
}

const SCRIPTS = {
  sbxDeadWorkerJobs: luaScript('deadWorkerJobs-2'),
  sbxForgetDeadWorker: luaScript('forgetDeadWorker-3'),
};

interface ScriptedClient {
  sbxDeadWorkerJobs(info: string, jobs: string): Promise<string[] | null>;
  sbxForgetDeadWorker(info: string, jobs: string, index: string, id: string): Promise<'ok' | 'alive' | 'jobs'>;
}

export class WorkerDirectory {
  private readonly scripted: ScriptedClient;
  /** The list() under way for listShared(), if any. */
  private reading: Promise<WorkerInfo[]> | null = null;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
  ) {
    this.scripted = defineScripts<ScriptedClient>(redis, SCRIPTS);
  }

  /**
   * This worker's entry, alive for `ttlMs` more. 'kept' when Redis is full (OOM under noeviction)
   * and refused to write it: its TTL is renewed as it stands instead (PEXPIRE, which Redis does not
   * refuse when full: it adds nothing), so the worker stays alive to itself (redis-watchdog.ts) and
   * to the others' janitors while its jobs run on and their writes wait for room. Before, a Redis
   * full for 5 heartbeats killed every running job of the fleet (worker_lost). Throws when neither
   * could be done (Redis down, the entry expired already).
   */
  async heartbeat(info: WorkerInfo, ttlMs: number): Promise<'written' | 'kept'> {
    const key = this.keys.worker(info.id);
    try {
      await this.redis.set(key, JSON.stringify(info), 'PX', ttlMs);
    } catch (e) {
      if (replyCode(e) !== 'OOM' || (await this.redis.pexpire(key, ttlMs)) !== 1) throw e;
      return 'kept';
    }
    await this.redis.zadd(this.keys.workers(), Date.now(), info.id);
    return 'written';
  }

  /** This worker's own entry, at its shutdown (a dead worker's: forgetIfDead). */
  async remove(id: string): Promise<void> {
    await this.redis.del(this.keys.worker(id));
    await this.redis.zrem(this.keys.workers(), id);
  }

  async get(id: string): Promise<WorkerInfo | null> {
    const raw = await this.redis.get(this.keys.worker(id));
    return raw ? (JSON.parse(raw) as WorkerInfo) : null;
  }

  async isAlive(id: string): Promise<boolean> {
    return (await this.redis.exists(this.keys.worker(id))) === 1;
  }

  /** The jobs of worker `id` if it is dead (heartbeat expired), read in one step with that check; null if alive. */
  async deadWorkerJobs(id: string): Promise<string[] | null> {
    return this.scripted.sbxDeadWorkerJobs(this.keys.worker(id), this.keys.workerJobs(id));
  }

  /** Drop worker `id` from the index if it is still dead and has no job left to settle; what was found. */
  async forgetIfDead(id: string): Promise<'ok' | 'alive' | 'jobs'> {
    return this.scripted.sbxForgetDeadWorker(this.keys.worker(id), this.keys.workerJobs(id), this.keys.workers(), id);
  }

  /** Live workers; ids whose info expired are dropped from the index as they are found, unless they still have jobs (the janitor's). */
  async list(): Promise<WorkerInfo[]> {
    const ids = await this.redis.zrange(this.keys.workers(), 0, -1);
    if (ids.length === 0) return [];
    const pipe = this.redis.pipeline();
    for (const id of ids) pipe.get(this.keys.worker(id));
    const rows = (await pipe.exec()) ?? [];
    const live: WorkerInfo[] = [];
    const dead: string[] = [];
    rows.forEach(([, v], i) => {
      if (typeof v !== 'string') return void dead.push(ids[i]!);
      const info = readWorkerInfo(v);
      if (info) live.push(info);
    });
    for (const id of dead) await this.forgetIfDead(id);
    return live;
  }

  /**
   * list(), shared by every caller that asks while one is being read: at most one read of the fleet
   * at a time in this process, whatever the number of requests (a caller may get a read that started
   * just before it asked; heartbeats are SBX_HEARTBEAT_MS apart anyway). Each worker's info lists
   * every image its cache holds (up to SBX_IMAGE_CACHE_REFERENCES), and GET /v1/images read them all per request: 50
   * requests at once of a tenant, against 10 workers of 1,000 images, made Redis send 97.8 MiB and
   * took the API 2.3 s of CPU. The answer is shared: callers must not change it.
   */
  listShared(): Promise<readonly WorkerInfo[]> {
    this.reading ??= this.list().finally(() => {
      this.reading = null;
    });
    return this.reading;
  }

  async addRunning(workerId: string, jobId: string): Promise<void> {
    await this.redis.sadd(this.keys.workerJobs(workerId), jobId);
  }

  async removeRunning(workerId: string, jobId: string): Promise<void> {
    await this.redis.srem(this.keys.workerJobs(workerId), jobId);
  }

  async running(workerId: string): Promise<string[]> {
    return this.redis.smembers(this.keys.workerJobs(workerId));
  }
}
