/**
 * Commands the API broadcasts to every worker over Redis pub/sub (one channel, RedisKeys.control()):
 * cancel a job, pre-pull or evict an image. One schema for both sides: the API publishes only what
 * it validates here, a worker acts only on what parses here (a malformed message is logged and dropped).
 */
import { z } from 'zod';
import { STOP_GRACE_BOUND, STOP_SIGNALS } from './launch-bounds.ts';
import type { Logger } from './logger.ts';
import type { RedisClient } from './redis.ts';
import type { RedisKeys } from './redis-keys.ts';
import { unknownIn, valueAt } from './schema-unknowns.ts';

const DIGEST = /^sha256:[a-f0-9]{64}$/;
/**
 * A cancel's `stop` (docker stop): the signal its command gets first, and how long it has to exit.
 * No signal: the job's own stopSignal, else SIGTERM, as the worker read it from the job's request
 * (an API copy leaves it out when the job's stopSignal is one it does not know: a newer copy's).
 */
export const CancelStop = z.strictObject({ graceMs: z.number().int().min(0).max(STOP_GRACE_BOUND.max), signal: z.enum(STOP_SIGNALS).optional() });
export type CancelStop = z.infer<typeof CancelStop>;

export const ControlMessage = z.discriminatedUnion('type', [
  /**
   * Kill the job if this worker runs it (the job ends `cancelled`); with `stop` (docker stop), its
   * command first gets `signal` and `graceMs` to exit, and its output files are collected.
   */
  z.strictObject({
    type: z.literal('cancel'),
    id: z.string().regex(/^j_[0-9A-Z]{26}$/),
    stop: z.lazy(() => CancelStop).optional(),
  }),
  /** Pull this canonical reference into the cache now (policy always). */
  z.strictObject({ type: z.literal('pull'), image: z.string().min(1).max(512) }),
  /** Forget every reference that resolved to this digest, unless a running job uses it. */
  z.strictObject({ type: z.literal('evict'), digest: z.string().regex(DIGEST) }),
]);
export type ControlMessage = z.infer<typeof ControlMessage>;

/** Publishes one message to every worker; throws if it does not fit the schema (a bug, not input). */
export async function publishControl(redis: RedisClient, keys: RedisKeys, message: ControlMessage): Promise<void> {
  await redis.publish(keys.control(), JSON.stringify(ControlMessage.parse(message)));
}

/**
 * Subscribes `sub` to the control channel; `handle` gets every well-formed message. One this version
 * does not know (a newer API's: a type, a field or a value it lacks, named in `unknown`) is logged
 * as such, apart from a malformed one; both are dropped. (A cancel is still applied from its mark in
 * Redis on the next heartbeat: JobRunner.recheckCancels.)
 */
export async function listenForControl(sub: RedisClient, keys: RedisKeys, logger: Logger, handle: (m: ControlMessage) => void): Promise<void> {
  const channel = keys.control();
  sub.on('message', (ch: string, raw: string) => {
    if (ch !== channel) return;
    let value: unknown;
    let parsed;
    try {
      value = JSON.parse(raw);
      parsed = ControlMessage.safeParse(value);
    } catch {
      parsed = null;
    }
    if (parsed?.success) return void handle(parsed.data);
    const unknown = parsed ? unknownParts(parsed.error.issues, value) : [];
    if (unknown.length) logger.warn({ raw: raw.slice(0, 200), unknown }, 'ignoring a control message this worker does not know (a newer version of sbx sent it: upgrade the workers before the API copies)');
    else logger.warn({ raw: raw.slice(0, 200) }, 'ignoring malformed control message');
  });
  await sub.subscribe(channel);
}

/** What of a message that failed ControlMessage is unknown rather than wrong: a type (the union's discriminator), fields, enum values. */
function unknownParts(issues: readonly z.core.$ZodIssue[], value: unknown): string[] {
  const type = valueAt(value, ['type']);
  const unknownType = issues.some((i) => i.code === 'invalid_union' && i.path.length === 1 && i.path[0] === 'type') && typeof type === 'string';
  return [...(unknownType ? [`type ${JSON.stringify(type)}`] : []), ...unknownIn(issues, value)];
}
