/**
 * Live workers: each worker writes its info under a key with a TTL of a few heartbeats and keeps a
 * set of the jobs it is running. A job whose worker's key has expired has lost its worker. A dead
 * worker leaves the index only once its jobs are settled, and only while it is still dead: both
 * checks and the removal are one Lua script (a heartbeat landing in between is never undone).
 */
import { defineScripts, luaScript } from './redis-scripts.ts';
import type { RedisClient } from './redis.ts';
import type { RedisKeys } from './redis-keys.ts';

export interface CachedImageInfo {
  image: string;
  digest: string;
  sizeBytes: number;
  lastUsedAt: string;
}

export interface WorkerInfo {
  id: string;
  host: string;
  pid: number;
  slotsTotal: number;
  slotsFree: number;
  runningJobs: string[];
  cachedBytes: number;
  images: CachedImageInfo[];
  cgroup: string;
  startedAt: string;
  lastHeartbeat: string;
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

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
  ) {
    this.scripted = defineScripts<ScriptedClient>(redis, SCRIPTS);
  }

  async heartbeat(info: WorkerInfo, ttlMs: number): Promise<void> {
    await this.redis.set(this.keys.worker(info.id), JSON.stringify(info), 'PX', ttlMs);
    await this.redis.zadd(this.keys.workers(), Date.now(), info.id);
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
    rows.forEach(([, v], i) => (typeof v === 'string' ? live.push(JSON.parse(v) as WorkerInfo) : dead.push(ids[i]!)));
    for (const id of dead) await this.forgetIfDead(id);
    return live;
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
