/**
 * Attempts of a job in its state hash: `attempt` (absent = 1, = the document's `attempts`) and
 * `started` (the attempt whose worker recorded, before executing the command, that it is about to).
 * A worker lost before that point may have its job put back in the queue (requeue); one lost after
 * it never does: a command runs at most once. Both are compare-and-set Lua scripts on the job's hash.
 */
import { randomUUID } from 'node:crypto';
import { defineScripts, luaScript } from './redis-scripts.ts';
import type { JobDocument } from './job-spec.ts';
import type { RedisClient } from './redis.ts';
import type { RedisKeys } from './redis-keys.ts';

const SCRIPTS = {
  sbxStartJob: luaScript('startJob-1'),
  sbxRequeueJob: luaScript('requeueJob-2'),
};

interface ScriptedClient {
  sbxStartJob(state: string, attempt: string): Promise<string>;
  sbxRequeueJob(state: string, events: string, attempt: string, doc: string, event: string, channel: string, token: string): Promise<string>;
}

/** 'ok', or why not: 'started', 'cancel', 'attempt' (another attempt by now), a status, '' (gone). */
export type RequeueResult = string;

/** The attempt a document belongs to (absent = the first). */
export const attemptOf = (doc: Pick<JobDocument, 'attempts'>): number => doc.attempts ?? 1;

export class JobAttempts {
  private readonly scripted: ScriptedClient;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
  ) {
    this.scripted = defineScripts<ScriptedClient>(redis, SCRIPTS);
  }

  /**
   * Worker, just before executing the command: record that this attempt starts it. False when the
   * attempt is no longer the worker's (requeued because it looked lost, cancelled, gone): it must not run.
   */
  async markStarted(id: string, attempt: number): Promise<boolean> {
    return (await this.scripted.sbxStartJob(this.keys.jobState(id), String(attempt))) === 'ok';
  }

  /** Queued again as `next` (status queued, attempts + 1) if attempt `attempt` never started its command. */
  async requeue(next: JobDocument, attempt: number): Promise<RequeueResult> {
    const event = JSON.stringify({ status: next.status, attempts: next.attempts });
    // Its own token: sent again after a reconnect (its answer lost), it is known for itself (requeueJob-2.lua).
    return this.scripted.sbxRequeueJob(this.keys.jobState(next.id), this.keys.jobEvents(next.id), String(attempt), JSON.stringify(next), event, this.keys.jobNotify(next.id), randomUUID());
  }

  /** Intent before a requeue, removed once the queue entry exists (the janitor finishes what a crash left). */
  async intend(id: string, now = Date.now()): Promise<void> {
    await this.redis.zadd(this.keys.requeuesPending(), now, id);
  }

  async done(id: string): Promise<void> {
    await this.redis.zrem(this.keys.requeuesPending(), id);
  }

  /** Intents older than `olderThanMs`, at most 100. */
  async stale(olderThanMs: number, now = Date.now()): Promise<string[]> {
    return this.redis.zrangebyscore(this.keys.requeuesPending(), '-inf', now - olderThanMs, 'LIMIT', 0, 100);
  }
}
