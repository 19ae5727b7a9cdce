/**
 * The job record in Redis: state hash + event stream per job, written through two Lua scripts
 * (create, transition) so every status change is atomic and appends its event in the same step.
 * Shared by the API (create, read, cancel, list) and the worker (transition, output).
 */
import { Redis } from 'ioredis';
import { defineScripts, luaEvalText, luaScript } from './redis-scripts.ts';
import type { RedisClient } from './redis.ts';
import type { RedisKeys } from './redis-keys.ts';
import { isFinished, type CallbackState, type JobDocument, type JobEventType, type JobOutput, type JobSpec, type JobStatus, type LiveUsage, type OutputFileInfo } from './job-spec.ts';
import { WebhookQueue } from './webhooks/webhook-queue.ts';
import { openRegistryAuth, sealRegistryAuth, type RegistryAuth } from './secrets/registry-auth.ts';
import type { SecretBox } from './secrets/secret-box.ts';
import { TenantIndexSweeper } from './tenant-index-sweeper.ts';
import { CancelStop } from './control-messages.ts';
import { sendTogether, sendTogetherThisTurn } from './redis-together.ts';

const CREATE = luaScript('createJob-2');
/** createJob-2's text without its leading comment, as sent with each EVAL (createThenQueue). */
const CREATE_LUA = luaEvalText(CREATE);
const INDEX = luaScript('indexJob-1');
/** indexJob-1's text without its leading comment, as sent with each EVAL (createThenQueue). */
const INDEX_LUA = luaEvalText(INDEX);
/**
 * How much longer than its longest-lived record a tenant's index lives: its TTL is set when a job is
 * created, the record's final TTL is set when the job ends (at most the record's first TTL later).
 */
const INDEX_TTL_MARGIN_SECONDS = 60;

const SCRIPTS = {
  sbxCreateJob: CREATE,
  sbxIndexJob: INDEX,
  sbxTransitionJob: luaScript('transitionJob-2'),
  sbxAppendOutput: luaScript('appendOutput-2'),
  sbxAbandonJob: luaScript('abandonJob-2'),
  // The webhook's delivery state, kept beside the final doc (field `callback`); never recreates an expired record.
  // One field of a job's state hash, only while the job exists (never a key without its TTL).
  sbxSetJobField: { numberOfKeys: 1, lua: "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end redis.call('HSET', KEYS[1], unpack(ARGV)) return 1" },
};

/** One collected output file as stored: its description and its kept bytes (base64). */
export interface StoredOutputFile extends OutputFileInfo {
  content: string;
}

interface ScriptedClient {
  sbxCreateJob(k1: string, k2: string, doc: string, spec: string, tenant: string, ttl: number, sealedAuth: string, waiter: string): Promise<number>;
  sbxIndexJob(index: string, createdMs: number, id: string, ttl: number): Promise<number>;
  sbxTransitionJob(k1: string, k2: string, from: string, to: string, doc: string, type: string, data: string, channel: string, ttl: number, attempt: string, startedAttempt: string): Promise<string>;
  /** HSET of field/value pairs on a job's record that exists (an expired one is not made again, without a TTL); 1 set, 0 gone. */
  sbxSetJobField(k1: string, field: string, value: string, ...more: string[]): Promise<number>;
  sbxAbandonJob(k1: string, k2: string): Promise<number>;
  sbxAppendOutput(k1: string, k2: string, channel: string, attempt: string, number: string, ...typeAndData: Array<string | Buffer>): Promise<number>;
}

/** Told of every job this process moved to a final status (metrics); must not throw. */
export type FinishListener = (doc: JobDocument, tenant: string | null) => void;

export interface StoredJob {
  doc: JobDocument;
  spec: JobSpec;
  tenant: string;
  status: JobStatus;
  cancelRequested: boolean;
  /** The sealed registryAuth (field `auth`), read with the rest: registryAuth(id, sealedAuth) opens it without another round trip. */
  sealedAuth?: string | null;
  /** While running: the usage its worker recorded last (recordLiveUsage), kept beside the document. */
  liveUsage?: LiveUsage;
}

export interface JobEvent {
  id: string;
  type: JobEventType;
  data: string;
}

export interface OutputChunk {
  type: 'stdout' | 'stderr';
  data: string;
}

/**
 * One output event as the event stream stores it: its type and its UTF-8 JSON (`{"data":…}`),
 * serialized once. The worker counts its bytes against the tenant's storage budget from the same
 * buffer it sends (outputEventBytes), and Redis gets the bytes as they are: before, a batch of output
 * was JSON-escaped and measured twice (once for the count, once for the command) and measured and
 * encoded again by ioredis; with binary output, 2–3 s of a worker's event loop under 7 such jobs.
 */
export interface EncodedOutputEvent {
  type: 'stdout' | 'stderr';
  json: Buffer;
}

export function encodeOutputEvent(chunk: OutputChunk): EncodedOutputEvent {
  return { type: chunk.type, json: Buffer.from(JSON.stringify({ data: chunk.data })) };
}

export class JobStore {
  private readonly scripted: ScriptedClient;
  private readonly finishListeners: FinishListener[] = [];
  private webhooks: WebhookQueue | null = null;
  /** Drops index entries of expired jobs as jobs are created (the index would otherwise grow for ever). */
  private readonly indexSweeper: TenantIndexSweeper;

  constructor(
    readonly redis: RedisClient,
    readonly keys: RedisKeys,
    readonly ttlSeconds: number,
    /** SBX_SECRETS_KEY: seals a job's registryAuth (API), opens it (worker); null = none accepted. */
    private readonly secrets: SecretBox | null = null,
    /**
     * The connection for the webhook queue (BullMQ) this store opens when a job with a callbackUrl
     * ends: best not `redis` itself, so BullMQ's ~50 scripts stay off it (ioredis copies every script
     * of a connection into each pipeline()/multi() made on it).
     */
    private readonly queueConnection: RedisClient = redis,
  ) {
    this.scripted = defineScripts<ScriptedClient>(redis, SCRIPTS);
    this.indexSweeper = new TenantIndexSweeper(redis, keys, ttlSeconds);
  }

  /**
   * Store a new job; false when the id exists already. Its TTL covers the longest possible run.
   * registryAuth is stored sealed in the `auth` field, never in the spec JSON (400 without a key).
   * `waiter`: the inbox channel of the API process waiting for the end (?wait=true), pinged by the
   * final transition with the job's notify channel (api/src/job-events-hub.ts).
   */
  async create(spec: JobSpec, doc: JobDocument, waiter = ''): Promise<boolean> {
    const [created] = await Promise.all(this.sendCreate(spec, doc, waiter, null));
    this.indexSweeper.created(spec.tenant);
    return created === 1;
  }

  /**
   * create(), then `enqueue()` (the job's queue entry, sent over `queueConnection`) without waiting
   * for the record's answer: the record goes out first over that same connection, and Redis runs one
   * connection's commands in the order sent, so no worker can take the entry before the record
   * exists. One round trip fewer before a worker sees the job. The record is written with EVAL (the
   * script's text), not EVALSHA: after a SCRIPT FLUSH, ioredis would answer NOSCRIPT by sending the
   * script again, i.e. after the entry. On a Cluster (record and queue on different nodes, no order
   * between them) the entry waits for the record, as create() then enqueue() would.
   */
  async createThenQueue(spec: JobSpec, doc: JobDocument, waiter: string, queueConnection: RedisClient, enqueue: () => Promise<unknown>): Promise<boolean> {
    if (!(queueConnection instanceof Redis)) {
      const created = await this.create(spec, doc, waiter);
      await enqueue();
      return created;
    }
    // One socket write for the record, its index entry and the queue entry (BullMQ writes a few
    // microtasks later): Redis reads them together, and the worker is woken by the entry that much sooner.
    const [created] = await sendTogetherThisTurn(queueConnection, () => Promise.all([...this.sendCreate(spec, doc, waiter, queueConnection), enqueue()]));
    this.indexSweeper.created(spec.tenant);
    return created === 1;
  }

  /**
   * The record (createJob) and the tenant index entry, written back to back: over this store's
   * connection (the script by its SHA), or over `via` as EVAL of its text (createThenQueue). Ids are
   * unique (ULIDs), so the index entry goes out alongside the record. The index entry's script
   * (indexJob-1) also pushes the index's TTL past the record's longest possible life (its first TTL,
   * then the job TTL from its end): the index of a tenant that stops submitting expires with its
   * records instead of staying for ever (the sweeper only runs as jobs are created).
   */
  private sendCreate(spec: JobSpec, doc: JobDocument, waiter: string, via: Redis | null): [Promise<unknown>, Promise<unknown>] {
    const ttl = this.ttlSeconds + Math.ceil(spec.limits.timeoutMs / 1000) + 3600;
    const sealedAuth = spec.registryAuth ? sealRegistryAuth(this.secrets, spec.id, spec.registryAuth) : '';
    const args = [this.keys.jobState(spec.id), this.keys.jobEvents(spec.id), JSON.stringify(doc), JSON.stringify({ ...spec, registryAuth: null }), spec.tenant, ttl, sealedAuth, waiter] as const;
    const conn = via ?? this.redis;
    const index = [this.keys.tenantJobs(spec.tenant), Date.parse(spec.createdAt), spec.id, ttl + this.ttlSeconds + INDEX_TTL_MARGIN_SECONDS] as const;
    return sendTogether(conn, () => [
      via ? via.eval(CREATE_LUA, 2, ...args) : this.scripted.sbxCreateJob(...args),
      via ? via.eval(INDEX_LUA, 1, ...index) : this.scripted.sbxIndexJob(...index),
    ]);
  }

  /**
   * Undo a submission that failed after create(): the record, its events and its index entry go,
   * unless a worker has claimed the job already (its queue entry did go out, only the answer was
   * lost). Returns false in that case: the job is real and runs.
   */
  async abandon(id: string, tenant: string): Promise<boolean> {
    if ((await this.scripted.sbxAbandonJob(this.keys.jobState(id), this.keys.jobEvents(id))) !== 1) return false;
    await this.redis.zrem(this.keys.tenantJobs(tenant), id);
    return true;
  }

  async get(id: string): Promise<StoredJob | null> {
    const [doc, spec, tenant, status, cancel, callback, auth, live] = await this.redis.hmget(this.keys.jobState(id), 'doc', 'spec', 'tenant', 'status', 'cancel', 'callback', 'auth', 'live');
    if (!doc || !spec || !tenant || !status) return null;
    return {
      doc: withCallback(doc, callback), spec: JSON.parse(spec) as JobSpec, tenant, status: status as JobStatus, cancelRequested: cancel === '1', sealedAuth: auth ?? null,
      ...(live && status === 'running' ? { liveUsage: JSON.parse(live) as LiveUsage } : {}),
    };
  }

  /**
   * Worker only: the job's own registry credentials, decrypted; null if it has none (or has ended).
   * `sealed`: the `auth` field as get() read it (StoredJob.sealedAuth), instead of reading it again.
   */
  async registryAuth(id: string, sealed?: string | null): Promise<RegistryAuth | null> {
    const value = sealed !== undefined ? sealed : await this.redis.hget(this.keys.jobState(id), 'auth');
    return value ? openRegistryAuth(this.secrets, id, value) : null;
  }

  async getDoc(id: string): Promise<JobDocument | null> {
    const [doc, callback] = await this.redis.hmget(this.keys.jobState(id), 'doc', 'callback');
    return doc ? withCallback(doc, callback) : null;
  }

  /** Several documents in one round trip, each with its stored size in characters (null: gone). */
  async getDocsSized(ids: readonly string[]): Promise<Array<{ doc: JobDocument; chars: number } | null>> {
    const rows = await Promise.all(sendTogether(this.redis, () => ids.map((id) => this.redis.hmget(this.keys.jobState(id), 'doc', 'callback'))));
    return rows.map(([doc, callback]) => (doc ? { doc: withCallback(doc, callback), chars: doc.length + (callback?.length ?? 0) } : null));
  }

  /** Several records' status fields in one round trip (null: gone), without their documents. */
  async getStatuses(ids: readonly string[]): Promise<Array<string | null>> {
    return Promise.all(sendTogether(this.redis, () => ids.map((id) => this.redis.hget(this.keys.jobState(id), 'status'))));
  }

  /**
   * The document and, once the job is final, its output when short (shortOutput), in one round trip
   * (HMGET + XRANGE of the first SHORT_OUTPUT.events events, sent back to back). `output` is null
   * while the job has not finished, and for a long output: the caller streams that
   * (api/src/job-output-response.ts), never holding all of it.
   */
  async getDocWithOutput(id: string): Promise<{ doc: JobDocument; output: JobOutput | null } | null> {
    const [fields, rows] = await Promise.all(sendTogether(this.redis, () => [this.redis.hmget(this.keys.jobState(id), 'doc', 'callback'), this.redis.xrange(this.keys.jobEvents(id), '-', '+', 'COUNT', SHORT_OUTPUT.events)] as const));
    const [raw, callback] = fields;
    if (!raw) return null;
    const doc = withCallback(raw, callback);
    if (!isFinished(doc.status)) return { doc, output: null };
    return { doc, output: shortOutput(rows.map(([eid, f]) => toEvent(eid, f))) };
  }

  /** A running job's usage now (worker, every SBX_LIVE_USAGE_MS); shown with its document while it runs. */
  async recordLiveUsage(id: string, usage: LiveUsage): Promise<void> {
    await this.scripted.sbxSetJobField(this.keys.jobState(id), 'live', JSON.stringify(usage));
  }

  /** Record the webhook's delivery state (worker/src/webhooks); false when the job is gone. */
  async recordCallback(id: string, state: CallbackState): Promise<boolean> {
    return (await this.scripted.sbxSetJobField(this.keys.jobState(id), 'callback', JSON.stringify(state))) === 1;
  }

  /**
   * The bytes of the files the job's outputFiles collected (worker, before the job's final
   * transition), kept with the job's state and gone with it; false when the job is gone. `json`: `files`
 * serialized, when the caller has it already.
   */
  async recordOutputFiles(id: string, files: StoredOutputFile[], json = JSON.stringify(files)): Promise<boolean> {
    return (await this.scripted.sbxSetJobField(this.keys.jobState(id), 'files', json)) === 1;
  }

  /** The size in characters of what recordOutputFiles recorded (HSTRLEN: nothing read; 0: none). */
  async outputFilesChars(id: string): Promise<number> {
    return this.redis.hstrlen(this.keys.jobState(id), 'files');
  }

  /** The files recorded by recordOutputFiles as stored, their JSON array (none: null), not parsed. */
  async outputFilesJson(id: string): Promise<string | null> {
    return this.redis.hget(this.keys.jobState(id), 'files');
  }

  /** `listener` is told of each job this store finishes (metrics by status and tenant). */
  onFinished(listener: FinishListener): void {
    this.finishListeners.push(listener);
  }

  /**
   * Compare-and-set the status. Returns 'ok', or the status found instead ('' when the job is gone;
   * 'attempt' when, from `pulling`, the job is in another attempt than `doc.attempts`).
   * A finishing transition (event 'exit') sets the final TTL on the record. `tenant`: the job's, when
   * the caller knows it (the worker), so releasing its quota needs no read of the record.
   */
  async transition(doc: JobDocument, from: readonly JobStatus[], eventType: 'status' | 'exit', tenant?: string): Promise<string> {
    const json = JSON.stringify(doc);
    const data = eventType === 'exit' ? json : `{"status":${JSON.stringify(doc.status)}}`;
    // The intent first: if this process dies between the transition and queueing the webhook, the
    // janitor finds the job here (requeueLostWebhooks) and queues it.
    const webhookIntent = eventType === 'exit' && doc.callback ? await this.redis.zadd(this.keys.webhooksPending(), Date.now(), doc.id) : null;
    const result = await this.scripted.sbxTransitionJob(
      this.keys.jobState(doc.id), this.keys.jobEvents(doc.id), from.join(','), doc.status, json,
      eventType, data, this.keys.jobNotify(doc.id), eventType === 'exit' ? this.ttlSeconds : 0,
      // From `pulling`, only the attempt this document is of (a requeued job: core/src/job-attempts.ts).
      from.includes('pulling') ? String(doc.attempts ?? 1) : '',
      '',
    );
    if (result === 'ok' && eventType === 'exit') await this.finished(doc, tenant);
    else if (webhookIntent !== null) await this.redis.zrem(this.keys.webhooksPending(), doc.id); // finished elsewhere: theirs
    return result;
  }

  /**
   * A worker's claim: `queued` → `doc.status` (pulling), compare-and-set as transition(). With
   * `startsNow`, the same step also records the attempt as started (job-attempts.ts markStarted): for
   * a job that will run at once (image cached, a slot free), so no second round trip precedes its
   * command. The cost: a worker lost between the claim and the command ends the job worker_lost
   * rather than queueing it again.
   */
  async claim(doc: JobDocument, startsNow: boolean): Promise<string> {
    return this.scripted.sbxTransitionJob(
      this.keys.jobState(doc.id), this.keys.jobEvents(doc.id), 'queued', doc.status, JSON.stringify(doc),
      'status', `{"status":${JSON.stringify(doc.status)}}`, this.keys.jobNotify(doc.id), 0, '',
      startsNow ? String(doc.attempts ?? 1) : '',
    );
  }

  /**
   * Queues the webhooks that a crash (or a Redis error) kept from being queued after their job's final
   * transition: intents older than `olderThanMs` whose job is final, has not been attempted and is
   * not in the queue. Intents of jobs that are gone, or still not final after the job TTL, are dropped.
   * Returns how many were queued.
   */
  async requeueLostWebhooks(olderThanMs: number, now = Date.now()): Promise<number> {
    const key = this.keys.webhooksPending();
    const ids = await this.redis.zrangebyscore(key, '-inf', now - olderThanMs, 'LIMIT', 0, 100);
    let queued = 0;
    for (const id of ids) {
      const doc = await this.getDoc(id);
      if (doc && !isFinished(doc.status)) {
        const since = Number(await this.redis.zscore(key, id));
        if (now - since < this.ttlSeconds * 1000) continue; // its finisher may still be at work
      } else if (doc?.callback && doc.callback.attempts.length === 0 && !doc.callback.delivered) {
        this.webhooks ??= new WebhookQueue(this.queueConnection, this.keys);
        const tenant = (await this.redis.hget(this.keys.jobState(id), 'tenant')) ?? undefined;
        if (await this.webhooks.enqueueIfAbsent(id, tenant)) queued++;
      }
      await this.redis.zrem(key, id);
    }
    return queued;
  }

  /**
   * After a job reached its final status (whoever finished it): quota released, its webhook queued
   * (a Redis error here is thrown: the caller's finish is not silently without its webhook),
   * listeners told.
   */
  private async finished(doc: JobDocument, knownTenant?: string): Promise<void> {
    const tenant = await this.releaseFromQuota(doc.id, knownTenant);
    if (doc.callback) {
      this.webhooks ??= new WebhookQueue(this.queueConnection, this.keys);
      await this.webhooks.enqueue(doc.id, tenant ?? (await this.redis.hget(this.keys.jobState(doc.id), 'tenant')) ?? undefined);
      await this.redis.zrem(this.keys.webhooksPending(), doc.id);
    }
    for (const listener of this.finishListeners) listener(doc, tenant);
  }

  /** Close what the store opened itself (the webhook queue), not the Redis connection. */
  async close(): Promise<void> {
    await this.webhooks?.close();
  }

  /**
   * A finished job no longer counts against its tenant's jobs-at-once quota (core/src/tenant-quota.ts).
   * Best effort: a crash or a Redis error here leaves a member the quota's lazy repair drops.
   * `known`: the job's tenant when the caller has it (one ZREM, no HGET first).
   */
  private async releaseFromQuota(id: string, known?: string): Promise<string | null> {
    try {
      const tenant = known ?? (await this.redis.hget(this.keys.jobState(id), 'tenant'));
      if (tenant) await this.redis.zrem(this.keys.tenantActive(tenant), id);
      return tenant;
    } catch {
      return null; // repaired lazily
    }
  }

  async isCancelRequested(id: string): Promise<boolean> {
    return (await this.redis.hget(this.keys.jobState(id), 'cancel')) === '1';
  }

  /**
   * Mark a running job for cancellation, with its `stop` if any (the worker that runs it is told
   * over the control channel, and reads the marks of its jobs again: cancelsRequested()).
   */
  /** Marks the job for cancellation (with its stop, if any); false when its record is gone (expired meanwhile). */
  async requestCancel(id: string, stop?: CancelStop): Promise<boolean> {
    return (await this.scripted.sbxSetJobField(this.keys.jobState(id), 'cancel', '1', ...(stop ? ['cancelStop', JSON.stringify(stop)] : []))) === 1;
  }

  /**
   * Which of `ids` are marked for cancellation, each with its stop (null: killed at once), in one
   * round trip. A worker reads these again now and then: the control channel's message is lost
   * when its subscriber is reconnecting (pub/sub delivers to those subscribed at that moment only).
   */
  async cancelsRequested(ids: readonly string[]): Promise<Map<string, CancelStop | null>> {
    const rows = await Promise.all(sendTogether(this.redis, () => ids.map((id) => this.redis.hmget(this.keys.jobState(id), 'cancel', 'cancelStop'))));
    const marked = new Map<string, CancelStop | null>();
    rows.forEach(([cancel, stop], i) => {
      if (cancel !== '1') return;
      let parsed: CancelStop | null = null;
      try {
        parsed = stop ? CancelStop.parse(JSON.parse(stop)) : null;
      } catch { /* written by the API from a checked request: unreadable only if tampered with; killed at once */ }
      marked.set(ids[i]!, parsed);
    });
    return marked;
  }

  /**
   * Append output of attempt `attempt` of a running job (one step: its events and the ping). False
   * when the job is not `running` in that attempt (ended elsewhere meanwhile): nothing is written.
   * `number`: this append's place among the caller's appends to the attempt (1, 2, …), so that one
   * sent again after a reconnect (its answer lost) is applied once (appendOutput-2.lua); 0: unnumbered.
   */
  async appendOutput(id: string, attempt: number, chunks: Array<OutputChunk | EncodedOutputEvent>, number = 0): Promise<boolean> {
    if (chunks.length === 0) return true;
    const args = chunks.flatMap((c) => [c.type, 'json' in c ? c.json : JSON.stringify({ data: c.data })]);
    return (await this.scripted.sbxAppendOutput(this.keys.jobState(id), this.keys.jobEvents(id), this.keys.jobNotify(id), String(attempt), String(number), ...args)) > 0;
  }


  /** At most `count` events after `afterId` (exclusive), oldest first (eventsPerPage sizes a page). */
  async readEvents(id: string, afterId: string, count: number): Promise<JobEvent[]> {
    const start = afterId === '0' || afterId === '' ? '-' : `(${afterId}`;
    const rows = await this.redis.xrange(this.keys.jobEvents(id), start, '+', 'COUNT', count);
    return rows.map(([eid, fields]) => toEvent(eid, fields));
  }

  /**
   * A tenant's job ids, newest first, starting after `cursor` (score:id of the last one seen; it may
   * have left the index since). Empty: none left.
   */
  async listIds(tenant: string, limit: number, cursor: { score: number; id: string } | null): Promise<Array<{ id: string; score: number }>> {
    const max = cursor ? String(cursor.score) : '+inf';
    const count = limit + 64;
    // Members with the cursor's score (jobs created in the same millisecond) sort by id descending:
    // those up to and including the cursor are skipped. Past `count` of them a read can hold only
    // those, so the next read starts further on (one read unless a millisecond had that many).
    for (let offset = 0; ; offset += count) {
      const raw = await this.redis.zrevrangebyscore(this.keys.tenantJobs(tenant), max, '-inf', 'WITHSCORES', 'LIMIT', offset, count);
      const items: Array<{ id: string; score: number }> = [];
      for (let i = 0; i < raw.length; i += 2) items.push({ id: raw[i]!, score: Number(raw[i + 1]) });
      if (!cursor) return items;
      const after = items.filter((it) => it.score < cursor.score || it.id < cursor.id);
      if (after.length > 0 || items.length < count) return after;
    }
  }

  async forgetFromIndex(tenant: string, ids: string[]): Promise<void> {
    if (ids.length) await this.redis.zrem(this.keys.tenantJobs(tenant), ...ids);
  }
}

/**
 * An output answered in one piece: the job's whole event stream within `events` events (the final
 * status and its exit event included) and `bytes` of output. A longer one is streamed page by page.
 */
export const SHORT_OUTPUT = { events: 64, bytes: 1 << 20 } as const;

/** What one read of a job's event stream aims at: about `bytes` of event data, `min`..`max` events. */
export const EVENT_PAGE = { bytes: 256 * 1024, min: 16, max: 1000 } as const;

/**
 * How many events to read next so that the page holds about EVENT_PAGE.bytes, judged by the events
 * of the page before (`last`; none yet: the least). A job's output events are up to 64 KiB each, so
 * a fixed count of 1,000 could be 64 MiB held per reader (P48).
 */
export function eventsPerPage(last: readonly JobEvent[]): number {
  if (last.length === 0) return EVENT_PAGE.min;
  let bytes = 0;
  for (const e of last) bytes += e.data.length;
  const perEvent = Math.max(1, bytes / last.length);
  return Math.min(EVENT_PAGE.max, Math.max(EVENT_PAGE.min, Math.floor(EVENT_PAGE.bytes / perEvent)));
}

/** The text of a stdout or stderr event (its data is `{"data":"…"}`, as appendOutput writes it). */
export function outputText(e: JobEvent): string {
  return (JSON.parse(e.data) as { data: string }).data;
}

const OUTPUT_DATA_PREFIX = '{"data":"';
const OUTPUT_DATA_SUFFIX = '"}';
/**
 * Nothing but JSON string content: no quote, backslash or control character outside an escape JSON
 * allows. One character or one escape per step, never a run: with runs (`[^"\\…]+`) a string that
 * fails late took exponential time (26 characters and a quote: 0.36 s).
 */
const JSON_STRING_CONTENT = /^(?:[^"\\\u0000-\u001f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*$/;
/** Longest content checked by JSON_STRING_CONTENT (its backtrack stack grows with the length: 16 MiB overflowed it). */
const MAX_CHECKED_CHARS = 1 << 20;

/**
 * The text of a stdout or stderr event as JSON string content (escaped, without the quotes), for an
 * answer that writes output into a JSON document. appendOutput stores `JSON.stringify({ data })`, so
 * that content is already there between `{"data":"` and `"}`: it is taken as it is once checked to
 * be nothing else (19–25 ms for 16 MiB in 64 KiB events, where parsing and escaping it again took
 * 41–49 ms). Data of any other shape, or longer than an event appendOutput writes, is parsed and
 * escaped again, so nothing stored can end the string early.
 */
export function escapedOutputText(e: JobEvent): string {
  const d = e.data;
  const inner = d.length - OUTPUT_DATA_PREFIX.length - OUTPUT_DATA_SUFFIX.length;
  if (inner >= 0 && inner <= MAX_CHECKED_CHARS && d.startsWith(OUTPUT_DATA_PREFIX) && d.endsWith(OUTPUT_DATA_SUFFIX)) {
    const content = d.slice(OUTPUT_DATA_PREFIX.length, d.length - OUTPUT_DATA_SUFFIX.length);
    if (JSON_STRING_CONTENT.test(content)) return content;
  }
  return JSON.stringify(outputText(e)).slice(1, -1);
}

/**
 * The output in `events`, the first events of a job's stream, when they are the whole stream
 * (fewer than SHORT_OUTPUT.events; of a finished job, the exit event was appended in the same step
 * as its final status) and it is short; null otherwise.
 */
export function shortOutput(events: JobEvent[]): JobOutput | null {
  if (events.length >= SHORT_OUTPUT.events) return null;
  const out = { stdout: '', stderr: '' };
  let bytes = 0;
  for (const e of events) {
    if (e.type !== 'stdout' && e.type !== 'stderr') continue;
    bytes += e.data.length;
    if (bytes > SHORT_OUTPUT.bytes) return null;
    out[e.type] += outputText(e);
  }
  return out;
}

/** The stored document with the webhook's delivery state (recorded after the doc was final) in it. */
function withCallback(doc: string, callback: string | null | undefined): JobDocument {
  const parsed = JSON.parse(doc) as JobDocument;
  if (callback && parsed.callback) parsed.callback = JSON.parse(callback) as CallbackState;
  return parsed;
}

function toEvent(id: string, fields: string[]): JobEvent {
  let type = '';
  let data = '';
  for (let i = 0; i < fields.length; i += 2) {
    if (fields[i] === 'type') type = fields[i + 1]!;
    else if (fields[i] === 'data') data = fields[i + 1]!;
  }
  return { id, type: type as JobEventType, data };
}
