/**
 * stdout/stderr of one job → its Redis Stream. Bytes are read as UTF-8 per stream (a character
 * split across reads stays whole; invalid bytes become U+FFFD) and stored as JSON made from the bytes
 * in one pass (output-json.ts; the worker no longer decodes, escapes and encodes them again, three
 * passes that made binary output cost the worker ~2.5 times more), each stream is capped at
 * limits.outputBytes (the rest is drained and dropped, and `truncated` says so), and appends are
 * batched: while one write to Redis is in flight, new chunks queue up and go out in the next one.
 * Attach the pipes as soon as the process exists (so no byte and no end is missed); output is held
 * back until open(), called once the `running` transition is sent (same connection: Redis applies
 * it first), so the stream keeps its order. Redis appends only while the job is `running` in this
 * attempt (appendOutput-2.lua); once it refuses (the job was ended elsewhere) the rest is dropped.
 * An append carries at most BATCH_BYTES of output; past PAUSE_BYTES waiting for Redis the job's pipes
 * are no longer read (it blocks on its writes) until half of it has gone. Before, everything a job
 * wrote while one append was in flight went out in the next, JSON-escaped in one command: output of
 * NUL bytes (6 characters each) from 6 jobs held 1.1 GiB of the worker and delayed its heartbeat.
 * Each batch is charged to the tenant's storage budget for the hour; once that is used up, the rest
 * is dropped too (`truncated`, `budgetUsedUp`).
 * A batch Redis refuses for now (full under noeviction: OOM; loading; …) is sent again, the same
 * numbered append, until Redis takes it, each time after the job's move to `running` has landed
 * (open(recorded)): meanwhile the pipes pause past PAUSE_CHARS and the job blocks on its writes, as
 * while Redis is down. Before, the first OOM reply dropped the rest of the job's output and ended it
 * `error` / `internal` (redis-full.test.ts).
 * With limits.outputTailBytes (`tailBytes`), only the first capBytes - tailBytes of a stream go out as
 * they come; the last tailBytes after them are held (TailBuffer) and go out at flush(), so a long
 * output keeps its start and its end, and `droppedBytes` counts what was left out between them.
 */
import { createHash, type Hash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { EncodedOutputEvent, JobStore } from '../../../core/src/job-store.ts';
import { outputEventBytes, type TenantStorageBudget } from '../../../core/src/tenant-storage-budget.ts';
import { completeLength, encodeOutputJson } from './output-json.ts';
import { fromCharStart, TailBuffer } from './tail-buffer.ts';
import { untilRedisTakes, type NotNowListener } from '../../../core/src/redis-not-now.ts';
import type { StreamDigest } from '../../../core/src/receipts/job-receipt.ts';

type StreamName = 'stdout' | 'stderr';

/** Bytes of output one append carries at most (a NUL is 6 in the command: about 1.5 MiB). */
const BATCH_BYTES = 256 * 1024;
/** Bytes waiting for Redis past which the job's pipes are paused. */
const PAUSE_BYTES = 4 * BATCH_BYTES;
/** Bytes one pending piece grows to by joining what follows it on the same stream. */
const PIECE_BYTES = 64 * 1024;

/** Kept output of one stream waiting for Redis: whole characters (output-json.ts completeLength), in order. */
interface PendingPiece {
  type: StreamName;
  parts: Buffer[];
  bytes: number;
  /** Nothing joins it: the start of a character cut where the kept output ends (endUnfinished), which the bytes after the cut must not complete. */
  sealed: boolean;
}

/** Bytes of one stream in a batch: whole characters. */
interface BatchPiece {
  type: StreamName;
  bytes: Buffer;
}

const EMPTY = Buffer.alloc(0);

/** The rest of one stream dropped without reading it (native dropRestInKernel), or null when that stream cannot be. */
export type DropRest = (stream: Readable) => { ended: Promise<number>; lastDropAt(): number | null; stop(): void } | null;

export interface RedisOutputSinkOptions {
  /** The tenant's storage budget (core/src/tenant-storage-budget.ts), charged with each batch; none = no budget. */
  budget?: TenantStorageBudget | null;
  /** limits.outputTailBytes: of capBytes, kept from the end of each stream (0: all from its start). */
  tailBytes?: number;
  /** Hash everything written (kept or not) for the job's receipt: digests(). */
  digests?: boolean;
  /** Told when Redis refuses a batch for now (it is sent again): a log line. */
  onRefused?: NotNowListener;
  /**
   * Drops a stream's rest in the kernel once nothing more of it will be kept (its cap reached with
   * no tail, or the tenant's storage budget used up) and nothing needs its bytes (no digests): the
   * worker then no longer reads, per byte, output no one will see (reading a `yes` past its cap took
   * a whole CPU of the worker's). Without it the rest is read and dropped here.
   */
  dropRest?: DropRest;
}

export class RedisOutputSink {
  private readonly pending: PendingPiece[] = [];
  /** Bytes in `pending`. */
  private pendingBytes = 0;
  /** The job's pipes (attach()), paused while too much waits for Redis. */
  private sources: Readable[] = [];
  private readonly streams: Partial<Record<StreamName, Readable>> = {};
  private readonly dropRestOf: DropRest | null;
  /** Streams whose rest is being dropped in the kernel: the drop, and its end with `written` counted. */
  private readonly drops: Partial<Record<StreamName, { drop: NonNullable<ReturnType<DropRest>>; counted: Promise<void> }>> = {};
  /** Streams dropRest could not take (a tty, not a pipe): read to their end, not offered again at each read. */
  private readonly undroppable = new Set<StreamName>();
  private paused = false;
  private readonly seen: Record<StreamName, number> = { stdout: 0, stderr: 0 };
  /** Of `seen`, the bytes Redis never got: the storage budget ran out before them, or Redis refused the job's output. */
  private readonly discarded: Record<StreamName, number> = { stdout: 0, stderr: 0 };
  /** Bytes the job wrote per stream, kept or not. */
  private readonly written: Record<StreamName, number> = { stdout: 0, stderr: 0 };
  /** The kept bytes of a character not finished yet at the end of each stream (at most 3), held until the rest comes or the stream ends. */
  private readonly unfinished: Record<StreamName, Buffer> = { stdout: Buffer.alloc(0), stderr: Buffer.alloc(0) };
  private readonly tails: Record<StreamName, TailBuffer>;
  /** Bytes of each stream sent as they come (capBytes less the tail). */
  private readonly headBytes: number;
  private readonly budget: TenantStorageBudget | null;
  private readonly onRefused: NotNowListener | undefined;
  /** Settles once the job's move to `running` has landed (open()): a refused batch is sent again only after it. */
  private recorded: Promise<unknown> = Promise.resolve();
  private readonly hashes: Record<StreamName, Hash> | null = null;
  private inFlight: Promise<void> | null = null;
  /** Appends sent so far, each numbered: one sent again after a reconnect is applied once (appendOutput-2.lua). */
  private appends = 0;
  private failure: unknown = null;
  private held = true;
  /** Redis refused an append: the job is no longer running here. */
  private refused = false;
  truncated = false;
  /** Date.now() at the first and at the latest byte written to either stream; null until then. */
  firstOutputAt: number | null = null;
  private latestOutputAt: number | null = null;
  /** The tenant's storage budget for the hour was used up: the rest is dropped. */
  budgetUsedUp = false;

  constructor(
    private readonly store: JobStore,
    private readonly jobId: string,
    private readonly attempt: number,
    private readonly capBytes: number,
    opts: RedisOutputSinkOptions = {},
  ) {
    this.budget = opts.budget ?? null;
    this.dropRestOf = opts.dropRest ?? null;
    this.onRefused = opts.onRefused;
    const tail = Math.min(Math.max(0, opts.tailBytes ?? 0), capBytes);
    this.headBytes = capBytes - tail;
    this.tails = { stdout: new TailBuffer(tail), stderr: new TailBuffer(tail) };
    if (opts.digests) this.hashes = { stdout: createHash('sha256'), stderr: createHash('sha256') };
  }

  /** Read a stream to its end; resolves when it ended (the process and its children let go of it). */
  attach(name: StreamName, stream: Readable): Promise<void> {
    this.sources.push(stream);
    this.streams[name] = stream;
    stream.on('data', (buf: Buffer) => this.write(name, buf));
    if (this.paused) stream.pause();
    return finished(stream).catch(() => {}).then(() => this.drops[name]?.counted);
  }

  /**
   * Date.now() at the latest byte written to either stream (bytes dropped in the kernel: when the
   * drop took them, not when this was asked: it is asked once per outputIdleTimeoutMs); null until then.
   */
  get lastOutputAt(): number | null {
    for (const { drop } of Object.values(this.drops)) {
      const at = drop.lastDropAt();
      if (at !== null && at > (this.latestOutputAt ?? 0)) this.latestOutputAt = at;
    }
    return this.latestOutputAt;
  }

  /** Stops dropping in the kernel (the job has ended and its pipes did not): what was dropped is counted. */
  stopDrops(): void {
    for (const { drop } of Object.values(this.drops)) drop.stop();
  }

  /** Nothing more of `name` is kept: its rest is dropped in the kernel when it can be and no digest needs it. */
  private dropRest(name: StreamName): void {
    const stream = this.streams[name];
    if (!stream || this.drops[name] || this.undroppable.has(name) || this.hashes || !this.dropRestOf) return;
    const drop = this.dropRestOf(stream);
    if (!drop) {
      this.undroppable.add(name);
      return;
    }
    this.sources = this.sources.filter((s) => s !== stream);
    const counted = drop.ended.then((bytes) => {
      this.written[name] += bytes;
      this.droppedInKernel[name] += bytes;
      if (bytes > 0) this.truncated = true;
    });
    this.drops[name] = { drop, counted };
  }

  /** Pauses the pipes past PAUSE_BYTES waiting, resumes them below half of it (or when nothing will be sent any more). */
  private throttle(): void {
    const stop = this.pendingBytes > PAUSE_BYTES && !this.refused && !this.budgetUsedUp;
    if (stop && !this.paused) {
      this.paused = true;
      for (const s of this.sources) s.pause();
    } else if (this.paused && (!stop && this.pendingBytes <= PAUSE_BYTES / 2 || this.refused || this.budgetUsedUp)) {
      this.paused = false;
      for (const s of this.sources) s.resume();
    }
  }

  /** Bytes kept per stream so far (at most the cap each): in Redis, or on their way (after flush(): in Redis). */
  get keptBytes(): Record<StreamName, number> {
    return { stdout: this.seen.stdout - this.discarded.stdout, stderr: this.seen.stderr - this.discarded.stderr };
  }

  /** Of droppedBytes, those dropped in the kernel (dropRest), never handled by the worker's JavaScript but for what Node held unread. */
  readonly droppedInKernel: Record<StreamName, number> = { stdout: 0, stderr: 0 };

  /**
   * Bytes of each stream written by the job and not kept (after flush(): final). Past the storage
   * budget, what was read before the cut and never stored is dropped too: counted as kept, the
   * dropped-bytes metric missed up to the whole budget's worth of it per job.
   */
  get droppedBytes(): Record<StreamName, number> {
    const kept = this.keptBytes;
    return { stdout: this.written.stdout - kept.stdout, stderr: this.written.stderr - kept.stderr };
  }

  /** Start appending to Redis (what arrived before is sent first); `recorded`: the move to `running` sent just before. */
  open(recorded?: Promise<unknown>): void {
    if (recorded) this.recorded = recorded.catch(() => {});
    this.held = false;
    if (this.pending.length && !this.inFlight) this.kick();
  }

  /** Size and SHA-256 of everything written to each stream, kept or not (with `digests`; after flush(): final). */
  digests(): Record<StreamName, StreamDigest> | null {
    if (!this.hashes) return null;
    const of = (name: StreamName): StreamDigest => ({ bytes: this.written[name], sha256: this.hashes![name].copy().digest('hex') });
    return { stdout: of('stdout'), stderr: of('stderr') };
  }

  write(name: StreamName, buf: Buffer): void {
    if (buf.length > 0) {
      this.latestOutputAt = Date.now();
      this.firstOutputAt ??= this.latestOutputAt;
    }
    this.written[name] += buf.length;
    this.hashes?.[name].update(buf);
    if (this.budgetUsedUp) {
      if (buf.length > 0) this.truncated = true;
      this.dropRest(name);
      return;
    }
    const room = this.headBytes - this.seen[name];
    const kept = room <= 0 ? null : buf.length > room ? buf.subarray(0, room) : buf;
    if (kept) this.keep(name, kept);
    const rest = kept ? buf.subarray(kept.length) : buf;
    if (rest.length === 0) return;
    if (this.headBytes === this.capBytes) {
      this.truncated = true;
      this.dropRest(name);
    } else this.tails[name].write(rest);
  }

  /** The held tail of `name` out: right after the start if nothing fell between them, else on a character's start. */
  private sendTail(name: StreamName): void {
    const tail = this.tails[name].take();
    if (tail.length === 0 || this.budgetUsedUp) return;
    const contiguous = this.seen[name] + tail.length === this.written[name];
    if (!contiguous) {
      this.truncated = true;
      // A character cut at the start's end: U+FFFD, as where the output is cut without a tail (its
      // bytes were kept, so they are not among the dropped ones); the tail starts on a new character.
      this.endUnfinished(name);
    }
    this.keep(name, contiguous ? tail : fromCharStart(tail));
  }

  /** `bytes` of `name` kept: counted, on their way to Redis up to the last whole character (the rest waits for the next bytes). */
  private keep(name: StreamName, bytes: Buffer): void {
    this.seen[name] += bytes.length;
    const held = this.unfinished[name];
    const all = held.length ? Buffer.concat([held, bytes]) : bytes;
    const whole = completeLength(all);
    this.unfinished[name] = whole === all.length ? EMPTY : Buffer.from(all.subarray(whole));
    this.push(name, all.subarray(0, whole));
  }

  /**
   * The unfinished character at the end of `name` out as it is (it reads as U+FFFD): the stream ended
   * or is cut there. In a piece of its own: joined with a tail after the cut, whose first bytes
   * (continuation bytes fromCharStart left) it could be completed by, it read as a character the job
   * never wrote (e2 82, then a tail of 80 80 80 80, was stored as "₀").
   */
  private endUnfinished(name: StreamName): void {
    this.push(name, this.unfinished[name], true);
    this.unfinished[name] = EMPTY;
  }

  /** Everything written so far is in Redis when this resolves. */
  async flush(): Promise<void> {
    this.held = false;
    for (const name of ['stdout', 'stderr'] as const) {
      this.sendTail(name);
      this.endUnfinished(name);
    }
    while (this.inFlight || this.pending.length) {
      if (!this.inFlight) this.kick();
      await this.inFlight;
    }
    if (this.failure) throw this.failure;
  }

  private push(type: StreamName, bytes: Buffer, sealed = false): void {
    if (bytes.length === 0) return;
    const last = this.pending[this.pending.length - 1];
    if (!sealed && last && last.type === type && !last.sealed && last.bytes < PIECE_BYTES) {
      last.parts.push(bytes);
      last.bytes += bytes.length;
    } else this.pending.push({ type, parts: [bytes], bytes: bytes.length, sealed });
    this.pendingBytes += bytes.length;
    if (!this.inFlight && !this.held) this.kick();
    else this.throttle();
  }

  /** The next batch: whole pieces from the front of `pending` up to BATCH_BYTES (at least one, cut between characters if larger). */
  private takeBatch(): BatchPiece[] {
    const batch: BatchPiece[] = [];
    let taken = 0;
    while (this.pending.length && taken < BATCH_BYTES) {
      const piece = this.pending[0]!;
      const bytes = piece.parts.length === 1 ? piece.parts[0]! : Buffer.concat(piece.parts, piece.bytes);
      const room = BATCH_BYTES - taken;
      const end = bytes.length <= room ? bytes.length : completeLength(bytes.subarray(0, room));
      if (end === 0) break; // the next character does not fit: the next batch starts with it
      batch.push({ type: piece.type, bytes: bytes.subarray(0, end) });
      taken += end;
      if (end === bytes.length) this.pending.shift();
      else [piece.parts, piece.bytes] = [[bytes.subarray(end)], bytes.length - end];
    }
    this.pendingBytes -= taken;
    return batch;
  }

  /**
   * Appends `batch`, charged to the tenant's storage budget when there is one: beside the append
   * while the room its latest charge left (this job's or an earlier one's of the tenant on this
   * worker: TenantStorageBudgets) is at least twice the batch (no round trip more), else first,
   * storing only what the charge granted. `cut`: the budget ran out on this batch; `stored`: the
   * bytes of each of its pieces Redis has now.
   */
  private async send(batch: BatchPiece[]): Promise<{ appended: boolean; cut: boolean; stored: number[] }> {
    const taken = <T>(send: () => Promise<T>) => untilRedisTakes(send, { onRefused: this.onRefused, beforeRetry: () => this.recorded });
    const append = (events: EncodedOutputEvent[]) => {
      if (!events.length) return Promise.resolve(true);
      const number = ++this.appends; // the same number each time it is sent
      return taken(() => this.store.appendOutput(this.jobId, this.attempt, events, number));
    };
    const events = batch.map(({ type, bytes }) => ({ type, json: encodeOutputJson(bytes) }));
    const all = batch.map((piece) => piece.bytes.length);
    const stored = (appended: boolean, kept = all) => (appended ? kept : []);
    if (!this.budget) {
      const appended = await append(events);
      return { appended, cut: false, stored: stored(appended) };
    }
    const budget = this.budget;
    const bytes = events.reduce((n, e) => n + outputEventBytes(e), 0);
    if (2 * bytes <= budget.room()) {
      const [appended, { granted }] = await Promise.all([append(events), taken(() => budget.charge(bytes))]);
      return { appended, cut: granted < bytes, stored: stored(appended) };
    }
    const { granted } = await taken(() => budget.charge(bytes));
    const fitted = granted < bytes ? fitToBudget(batch, events, granted) : { events, kept: all };
    const appended = await append(fitted.events);
    return { appended, cut: granted < bytes, stored: stored(appended, fitted.kept) };
  }

  /** Of `batch`, what Redis did not get (`stored`: its pieces' bytes it did) is no longer kept. */
  private notStored(batch: BatchPiece[], stored: number[]): void {
    batch.forEach((piece, i) => (this.discarded[piece.type] += piece.bytes.length - (stored[i] ?? 0)));
  }

  private kick(): void {
    if (this.refused || this.budgetUsedUp) {
      for (const piece of this.pending.splice(0)) this.discarded[piece.type] += piece.bytes;
      this.pendingBytes = 0;
      this.throttle();
      return;
    }
    const batch = this.takeBatch();
    this.inFlight = this.send(batch)
      .then(({ appended, cut, stored }) => {
        this.notStored(batch, stored);
        if (!appended) this.refused = true;
        if (cut) [this.budgetUsedUp, this.truncated] = [true, true];
      })
      .catch((e: unknown) => {
        this.failure = e;
      })
      .finally(() => {
        this.inFlight = null;
        if (this.pending.length) this.kick();
        this.throttle();
      });
  }
}

/**
 * The longest start of `batch` (encoded as `events`), in order, whose events fit `bytes` of the
 * budget (outputEventBytes); never half a character. `kept`: the bytes of each piece in it.
 */
function fitToBudget(batch: BatchPiece[], events: EncodedOutputEvent[], bytes: number): { events: EncodedOutputEvent[]; kept: number[] } {
  const out: EncodedOutputEvent[] = [];
  const kept: number[] = [];
  let left = bytes;
  for (const [i, piece] of batch.entries()) {
    const cost = outputEventBytes(events[i]!);
    if (cost <= left) {
      out.push(events[i]!);
      kept.push(piece.bytes.length);
      left -= cost;
      continue;
    }
    const prefix = (length: number): EncodedOutputEvent => ({ type: piece.type, json: encodeOutputJson(piece.bytes.subarray(0, completeLength(piece.bytes.subarray(0, length)))) });
    let [lo, hi] = [0, piece.bytes.length - 1]; // the longest prefix that fits: at most all but one byte
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (outputEventBytes(prefix(mid)) <= left) lo = mid;
      else hi = mid - 1;
    }
    const end = completeLength(piece.bytes.subarray(0, lo)); // not half a character
    if (end > 0) out.push(prefix(end));
    kept.push(end);
    break;
  }
  return { events: out, kept };
}
