/**
 * A tenant's idempotency keys (api.md: the same idempotencyKey from the same tenant within 24 h
 * returns the first job, never a second run).
 *
 * A submission claims its key (SET NX, the key → its job id) before it writes its job. One that finds
 * the key held reads the holder's job. While that job is not written yet (its submission is between
 * claim and record, usually a few milliseconds), it waits for it: it does not start a second job.
 * Only a claim that has had no job for TAKEOVER_MS is taken over (its API process died in between).
 * A submission refused after its claim (its quota, a failed write) gives the claim back, so that the
 * client's retry is not held up.
 *
 * Once its job is written, the claim is marked so (`=<id>`): a job record can expire before its key
 * (SBX_JOB_TTL_SECONDS may be under 24 h), and a key whose job was written and is gone is answered
 * 409 already_finished, never taken over (that would run the job a second time).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { IdempotentJobExpiredError } from '../../core/src/errors.ts';
import type { JobDocument } from '../../core/src/job-spec.ts';
import { IDEMPOTENCY_TTL_SECONDS } from '../../core/src/redis-keys.ts';
import { defineScripts } from '../../core/src/redis-scripts.ts';
import type { AppDeps } from './deps.ts';

/** How long a claim may go without its job before another submission with the key takes it over. */
export const TAKEOVER_MS = 10_000;
/** The longest pause between two looks at a claim whose job is not written yet (or at a job whose entry is not there yet: lost-submission.ts). */
export const MAX_PAUSE_MS = 50;

const SCRIPTS = {
  // The key → ARGV[2] (with its TTL) only if it still names ARGV[1]: a claim taken over once.
  sbxTakeOverIdempotencyKey: { numberOfKeys: 1, lua: "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) return 1" },
  // The key marked as naming a written job (`=` before the id), only if it still names ARGV[1]; its TTL kept.
  sbxSettleIdempotencyKey: { numberOfKeys: 1, lua: "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end redis.call('SET', KEYS[1], '=' .. ARGV[1], 'KEEPTTL') return 1" },
  // The key deleted only if it still names ARGV[1]: a refused submission gives back its own claim, never another's.
  sbxReleaseIdempotencyKey: { numberOfKeys: 1, lua: "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end return redis.call('DEL', KEYS[1])" },
};

interface ScriptedClient {
  sbxTakeOverIdempotencyKey(key: string, holder: string, id: string, ttlSeconds: number): Promise<number>;
  sbxReleaseIdempotencyKey(key: string, id: string): Promise<number>;
  sbxSettleIdempotencyKey(key: string, id: string): Promise<number>;
}

/** A claim's value: its job id, marked `=` once that job is written. */
const WRITTEN = '=';

/**
 * Claims the tenant's `key` for job `id`: null when this submission is the first (it goes on to
 * create its job), else the job of the submission that was (its document).
 */
export async function claimIdempotencyKey(deps: AppDeps, tenant: string, key: string, id: string): Promise<JobDocument | null> {
  const k = deps.keys.idempotency(tenant, key);
  const scripted = defineScripts<ScriptedClient>(deps.redis, SCRIPTS);
  for (let pause = 1; ; pause = Math.min(pause * 2, MAX_PAUSE_MS)) {
    if ((await deps.redis.set(k, id, 'EX', IDEMPOTENCY_TTL_SECONDS, 'NX')) === 'OK') return null;
    const value = await deps.redis.get(k);
    if (value === null) continue; // given back meanwhile: claim again
    // Our own claim: the SET was applied and its answer lost, and ioredis sent it again after reconnecting.
    if (value === id) return null;
    const written = value.startsWith(WRITTEN);
    const holder = written ? value.slice(WRITTEN.length) : value;
    const existing = await deps.store.getDoc(holder);
    if (existing) {
      // Written by a submission that did not get to mark it (its process died, or Redis went away).
      if (!written) void scripted.sbxSettleIdempotencyKey(k, holder).catch(() => {});
      return existing;
    }
    if (written) throw new IdempotentJobExpiredError(holder, deps.config.env.SBX_JOB_TTL_SECONDS);
    // The holder's job is not written yet: its submission is still on the way, or its process died.
    const leftMs = await deps.redis.pttl(k);
    if (leftMs === -2) continue; // expired meanwhile
    if (leftMs === -1 || IDEMPOTENCY_TTL_SECONDS * 1000 - leftMs >= TAKEOVER_MS) {
      if ((await scripted.sbxTakeOverIdempotencyKey(k, holder, id, IDEMPOTENCY_TTL_SECONDS)) === 1) return null;
      continue; // another submission took it over first
    }
    await sleep(pause);
  }
}

/**
 * How long ago the tenant's `key` was claimed, by Redis's clock: Infinity for a key without its TTL
 * (not claimed by this code) or gone. A claim TAKEOVER_MS old has no submission on its way any more.
 */
export async function idempotencyClaimAgeMs(deps: AppDeps, tenant: string, key: string): Promise<number> {
  const leftMs = await deps.redis.pttl(deps.keys.idempotency(tenant, key));
  return leftMs < 0 ? Infinity : IDEMPOTENCY_TTL_SECONDS * 1000 - leftMs;
}

/** Marks the tenant's `key` as naming job `id`, now written (unless another submission has taken it over). */
export async function settleIdempotencyKey(deps: AppDeps, tenant: string, key: string, id: string): Promise<void> {
  await defineScripts<ScriptedClient>(deps.redis, SCRIPTS).sbxSettleIdempotencyKey(deps.keys.idempotency(tenant, key), id);
}

/** Gives back the claim of job `id` on the tenant's `key` (its submission was refused); another's claim stays. */
export async function releaseIdempotencyKey(deps: AppDeps, tenant: string, key: string, id: string): Promise<void> {
  await defineScripts<ScriptedClient>(deps.redis, SCRIPTS).sbxReleaseIdempotencyKey(deps.keys.idempotency(tenant, key), id);
}
