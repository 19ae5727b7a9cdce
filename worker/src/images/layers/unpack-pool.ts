/**
 * A small pool of unpack worker threads shared by every ImageStore of the process. Each worker
 * extracts one layer at a time; the main thread streams it the compressed bytes with a bounded
 * number of unacknowledged chunks (back-pressure all the way to the socket).
 *
 * Protocol (main → worker): start, chunk*, end | abort. (worker → main): ack per chunk once it is
 * written, then exactly one of done / rejected (the layer is invalid: detail) / failed (I/O or other
 * error). A chunk travels in a slot of a SharedArrayBuffer ring that the worker shares with the main
 * thread for its lifetime (`slot`; the ack gives the slot back): no ArrayBuffer is allocated or
 * transferred per message, which on the main thread cost a mark-compact GC every few dozen MiB (V8
 * counts every transferred buffer as new external memory). A batch larger than a slot is transferred.
 *
 * A layer may get a second thread for its files (`UnpackJob.writerThread`): one thread decompresses
 * and hashes, the other parses the tar and writes the files, the tar bytes passing between them
 * through a ByteRing (byte-ring.ts). Writing the files is most of a layer's CPU, so a pull of one
 * layer otherwise leaves a second core idle. The writers are threads of their own, outside the
 * shares above. (main → writer): write; (writer → main): exactly one of written / rejected / failed.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { TenantShares, type Requester } from '../tenant-shares.ts';
import type { Readable } from 'node:stream';
import { ByteRing, createByteRing, type ByteRingBuffers } from './byte-ring.ts';
import { abortReason, type UnpackLimits, type UnpackResult } from './layer-extract.ts';
import type { ExtractionEnd } from './layer-extraction.ts';
import type { LayerWriteStats } from './layer-writer.ts';
import type { LayerCompression } from '../registry/media-types.ts';

export type WorkerRequest =
  | { type: 'start'; job: number; targetDir: string; compression: LayerCompression; diffId: string | null | undefined; limits: UnpackLimits; chown?: boolean; ring: SharedArrayBuffer; abortFlag: SharedArrayBuffer; tarRing?: ByteRingBuffers }
  | { type: 'write'; job: number; targetDir: string; limits: UnpackLimits; chown?: boolean; ring: ByteRingBuffers }
  | { type: 'chunk'; slot: number; length: number }
  | { type: 'chunk'; data: Uint8Array }
  /** `diffId`: the layer's, when `start` left it undefined (its config came while it downloaded). */
  | { type: 'end'; diffId?: string | null }
  | { type: 'abort' };

/** Every reply names the job it belongs to: late acks of an abandoned job must not count for the next. */
export type WorkerReply = { job: number } & (
  | { type: 'ready' }
  | { type: 'ack'; slot?: number }
  | { type: 'done'; result: ExtractionEnd }
  | { type: 'written'; stats: LayerWriteStats }
  | { type: 'rejected'; detail: string }
  | { type: 'failed'; message: string; code: string | undefined }
);

export interface UnpackJob {
  /** Opened only once a worker is free, so a queued layer does not hold an idle HTTP response. */
  source: () => Promise<Readable>;
  start: Omit<Extract<WorkerRequest, { type: 'start' }>, 'job' | 'ring' | 'abortFlag' | 'tarRing'>;
  /** Builds the error for a rejected layer. */
  fail: (detail: string) => Error;
  /** Whose pull it is: the threads are shared fairly between tenants (../tenant-shares.ts). */
  requester?: Requester;
  /** Ends the wait for a thread, and stops the thread's work on the layer (between entries) whenever it comes. */
  signal?: AbortSignal;
  /** The diffID when `start.diffId` is undefined: awaited once the download is over, before `end`. */
  lateDiffId?: () => Promise<string | null>;
  /** The layer may take an idle writer thread for its files (UnpackPool.spareWriter; which layer: ../pull/writer-choice.ts). */
  writerThread?: boolean;
}

/** The code of a thread's failure that only follows from the other thread's: the ring between them was closed. */
export const RING_CLOSED = 'SBX_UNPACK_RING_CLOSED';

const MAX_UNACKED_CHUNKS = 16;
/** How long an aborted job's thread has to stop before it is terminated (it looks between entries: normally milliseconds). */
const ABORT_GRACE_MS = 10_000;
/** A message carries at most this much of what the source had buffered (16 × 512 KiB in flight at most). */
const MAX_BATCH_BYTES = 512 * 1024;
let nextJobId = 1;

/** Bytes of one ring slot: a batch is at most MAX_BATCH_BYTES plus one socket chunk. */
export const SLOT_BYTES = 1024 * 1024;

/** Copies `chunks` into `target` (a ring slot or a fresh buffer to transfer). */
function concatInto(chunks: readonly Uint8Array[], target: Uint8Array): void {
  let offset = 0;
  for (const c of chunks) {
    target.set(c, offset);
    offset += c.byteLength;
  }
}

/**
 * Under tsx the worker must register the TypeScript loader itself (Node 20 workers do not inherit
 * it); compiled JavaScript loads the sibling .js file directly.
 */
function spawnWorker(): Worker {
  const self = import.meta.url;
  if (self.endsWith('.ts')) {
    const workerUrl = new URL('./layer-unpack-worker.ts', self).href;
    const tsxApi = import.meta.resolve('tsx/esm/api');
    const bootstrap = `import(${JSON.stringify(tsxApi)}).then(({ register }) => { register(); return import(${JSON.stringify(workerUrl)}); })`;
    return new Worker(bootstrap, { eval: true });
  }
  return new Worker(new URL('./layer-unpack-worker.js', self));
}

class PooledWorker {
  readonly worker: Worker;
  private listener: ((reply: WorkerReply) => void) | null = null;
  private crash: ((error: Error) => void) | null = null;
  /** Wakes run() when it waits for acknowledgements (on an ack, the final reply, or a crash). */
  private wake: (() => void) | null = null;
  private lastHeard = Date.now();
  /** MAX_UNACKED_CHUNKS slots of SLOT_BYTES, shared with the worker (see the protocol). */
  private readonly ring = new SharedArrayBuffer(MAX_UNACKED_CHUNKS * SLOT_BYTES);
  /** [0]: the id of a job the main thread aborted; the thread looks between entries, where it reads no message. */
  private readonly abortFlag = new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));
  /** The ring this thread puts a layer's tar bytes in when another thread writes its files; made on first use. */
  private tarRing: ByteRingBuffers | null = null;
  dead = false;
  /** Resolves once the worker has loaded its code (or died). */
  readonly ready: Promise<void>;

  constructor(private readonly stallMs: number) {
    this.worker = spawnWorker();
    let markReady: () => void = () => {};
    this.ready = new Promise((resolve) => (markReady = resolve));
    this.worker.on('message', (reply: WorkerReply) => {
      this.lastHeard = Date.now();
      if (reply.type === 'ready') markReady();
      else this.listener?.(reply);
    });
    const die = (error: Error) => {
      if (this.dead) return;
      markReady();
      this.dead = true;
      this.crash?.(error);
      this.wake?.();
    };
    this.worker.on('error', die);
    this.worker.on('exit', (code) => die(new Error(`unpack worker exited with code ${code}`)));
    // After the listeners: a 'message' listener refs the worker's port again, and an idle worker
    // (the thread kept for other tenants may never run a job) must not keep the process alive.
    this.worker.unref();
  }

  /**
   * Runs one job; resolves when nothing writes to the directory any more, whatever the outcome.
   * With `writer`, this thread decompresses and that one writes the files, the tar bytes passing
   * through a ByteRing of this thread's (layer-unpack-worker.ts).
   */
  async run(source: Readable, job: UnpackJob, writer: PooledWorker | null = null): Promise<UnpackResult> {
    const jobId = nextJobId++;
    if (!writer) return outcome(await this.decode(source, job, jobId, null), null, job);
    const buffers = (this.tarRing ??= createByteRing());
    const ring = new ByteRing(buffers);
    ring.reset(); // the last layer through it was over before its run() returned
    // Any end of the writer but `written` must stop this thread's writes to the ring (a rejection
    // stops it in the writer's thread; a crash only here).
    const written = writer.writeFiles(jobId, job.start, buffers).then(
      (reply) => {
        if (reply.type !== 'written') ring.abort();
        return reply;
      },
      (crash: unknown) => {
        ring.abort();
        throw crash;
      },
    );
    written.catch(() => {});
    // The pull's end (its deadline, its last waiter gone) stops the writer too, also once the
    // download is over and only the files are left to write.
    const onAbort = () => ring.abort();
    job.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      let decoded: WorkerReply;
      try {
        // A failed download stops the writer at once, not after the chunks already sent are written.
        decoded = await this.decode(source, job, jobId, buffers, () => ring.abort());
      } catch (e) {
        ring.abort();
        await written.catch(() => {});
        throw e;
      }
      if (decoded.type !== 'done') ring.abort(); // normally done by the decompressing thread itself as it fails
      const files = await written;
      if (job.signal?.aborted && files.type !== 'written') throw abortReason(job.signal);
      return outcome(decoded, files, job);
    } finally {
      job.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Writes the files of a layer another thread decompresses into `ring` (see run); resolves with this thread's final reply. */
  async writeFiles(jobId: number, start: UnpackJob['start'], ring: ByteRingBuffers): Promise<WorkerReply> {
    this.worker.ref();
    try {
      await this.ready;
      if (this.dead) throw new Error('unpack worker exited while it started');
      const finished = new Promise<WorkerReply>((resolve, reject) => {
        this.listener = (reply) => {
          if (reply.job === jobId) resolve(reply);
        };
        this.crash = reject;
      });
      this.worker.postMessage({
        type: 'write',
        job: jobId,
        targetDir: start.targetDir,
        limits: start.limits,
        ...(start.chown !== undefined ? { chown: start.chown } : {}),
        ring,
      } satisfies WorkerRequest);
      return await finished;
    } finally {
      this.listener = null;
      this.crash = null;
      if (!this.dead) this.worker.unref();
    }
  }

  /**
   * Streams the layer's compressed bytes to this thread; resolves with its final reply (done,
   * rejected or failed) once it has replied, or throws the source's error or the thread's crash.
   * `onSourceError` runs as soon as the source fails.
   */
  private async decode(source: Readable, job: UnpackJob, jobId: number, tarRing: ByteRingBuffers | null, onSourceError?: () => void): Promise<WorkerReply> {
    this.worker.ref();
    // A worker still loading its code (seconds under tsx on a busy host) is not stalled: the
    // watchdog's clock starts once it is ready.
    await this.ready;
    if (this.dead) throw new Error('unpack worker exited while it started');
    this.lastHeard = Date.now();
    let unacked = 0;
    // Every slot is free: the previous job's final reply came after the worker stopped reading its chunks.
    const freeSlots = Array.from({ length: MAX_UNACKED_CHUNKS }, (_, i) => i);
    let final: WorkerReply | null = null;
    const finished = new Promise<WorkerReply>((resolve, reject) => {
      this.listener = (reply) => {
        if (reply.job !== jobId) return;
        if (reply.type === 'ack') {
          unacked--;
          if (reply.slot !== undefined) freeSlots.push(reply.slot);
          this.wake?.();
          return;
        }
        final = reply;
        this.wake?.();
        resolve(reply);
      };
      this.crash = reject;
    });
    finished.catch(() => {});
    // A worker that owes us an answer (an ack or the final reply) and stays silent (a bug, a wedged
    // filesystem) is terminated, so the pull fails instead of hanging. A slow network is not a stall.
    let sentEnd = false;
    const watchdog = setInterval(() => {
      const owed = unacked > 0 || sentEnd;
      if (owed && !final && Date.now() - this.lastHeard > this.stallMs) void this.worker.terminate();
    }, Math.min(5_000, this.stallMs));
    watchdog.unref();
    // The pull's end (deadline, cancel, last waiter gone) stops the thread whatever it is at: the
    // download, the wait for the diffID, or writing files after the blob is in. It sees the flag
    // between entries and pieces, and the message between chunks; one that does not answer within
    // ABORT_GRACE_MS is terminated (the pool replaces it).
    let abortSent = false;
    let graceTimer: NodeJS.Timeout | undefined;
    let stopWaiting: (reason: unknown) => void = () => {};
    const abortWait = new Promise<never>((_, reject) => (stopWaiting = reject));
    abortWait.catch(() => {});
    const sendAbort = () => {
      if (abortSent || final || this.dead) return;
      abortSent = true;
      Atomics.store(this.abortFlag, 0, jobId);
      this.lastHeard = Date.now();
      sentEnd = true;
      this.worker.postMessage({ type: 'abort' } satisfies WorkerRequest);
      graceTimer = setTimeout(() => {
        if (!final && !this.dead) void this.worker.terminate();
      }, Math.min(ABORT_GRACE_MS, this.stallMs));
      graceTimer.unref();
    };
    const onAbort = () => {
      sendAbort();
      stopWaiting(abortReason(job.signal!));
      this.wake?.();
    };
    try {
      this.worker.postMessage({ ...job.start, job: jobId, ring: this.ring, abortFlag: this.abortFlag.buffer as SharedArrayBuffer, ...(tarRing ? { tarRing } : {}) } satisfies WorkerRequest);
      if (job.signal?.aborted) onAbort();
      else job.signal?.addEventListener('abort', onAbort, { once: true });
      let sourceError: unknown = null;
      try {
        const batch: Uint8Array[] = [];
        let batched = 0;
        const post = () => {
          if (unacked <= 0) this.lastHeard = Date.now();
          const slot = batched <= SLOT_BYTES ? freeSlots.pop() : undefined;
          if (slot !== undefined) {
            concatInto(batch, new Uint8Array(this.ring, slot * SLOT_BYTES, batched));
            this.worker.postMessage({ type: 'chunk', slot, length: batched } satisfies WorkerRequest);
          } else {
            const data = new Uint8Array(batched);
            concatInto(batch, data);
            this.worker.postMessage({ type: 'chunk', data } satisfies WorkerRequest, [data.buffer]);
          }
          batch.length = 0;
          batched = 0;
          unacked++;
        };
        for await (const chunk of source) {
          if (final || this.dead || abortSent) break;
          batch.push(chunk as Uint8Array);
          batched += (chunk as Uint8Array).byteLength;
          // What is already buffered goes in the same message (fewer messages, acks and wake-ups
          // while the worker is the slower side); nothing waits for more bytes to arrive.
          if (batched < MAX_BATCH_BYTES && source.readableLength > 0) continue;
          post();
          while (unacked >= MAX_UNACKED_CHUNKS && !final && !this.dead && !abortSent) await new Promise<void>((r) => (this.wake = r));
        }
        if (batched > 0 && !final && !this.dead && !abortSent) post();
      } catch (e) {
        sourceError = e;
        onSourceError?.();
      }
      let diffId: string | null | undefined;
      if (sourceError === null && abortSent) sourceError = abortReason(job.signal!);
      if (sourceError === null && !final && !this.dead && job.lateDiffId) {
        try {
          // A config that never comes must not keep an aborted pull's thread.
          diffId = await Promise.race([job.lateDiffId(), abortWait]);
        } catch (e) {
          sourceError = e;
          onSourceError?.();
        }
      }
      if (sourceError !== null) sendAbort();
      else if (!final && !this.dead && !abortSent) {
        this.lastHeard = Date.now();
        sentEnd = true;
        this.worker.postMessage({ type: 'end', ...(diffId !== undefined ? { diffId } : {}) } satisfies WorkerRequest);
      }
      if (sourceError === null && (final !== null || this.dead)) source.destroy();
      let reply: WorkerReply;
      try {
        reply = await finished;
      } catch (crash) {
        throw sourceError ?? (abortSent && job.signal?.aborted ? abortReason(job.signal) : crash);
      }
      if (sourceError !== null) throw sourceError;
      // Stopped by the abort: the pull's reason, not the thread's "unpack aborted".
      if (abortSent && job.signal?.aborted && reply.type === 'failed') throw abortReason(job.signal);
      return reply;
    } finally {
      job.signal?.removeEventListener('abort', onAbort);
      clearTimeout(graceTimer);
      clearInterval(watchdog);
      this.listener = null;
      this.crash = null;
      this.wake = null;
      if (!this.dead) this.worker.unref();
    }
  }
}

/** A final reply of the decompressing thread, and of the writing thread when there was one, as the layer's result or error. */
function outcome(decoded: WorkerReply, files: WorkerReply | null, job: UnpackJob): UnpackResult {
  const failures = (files ? [decoded, files] : [decoded]).filter((r) => r.type === 'rejected' || r.type === 'failed');
  // The thread that failed first says why: the other's "ring closed" only follows from it.
  const cause = failures.find((r) => !(r.type === 'failed' && r.code === RING_CLOSED)) ?? failures[0];
  if (cause?.type === 'rejected') throw job.fail(cause.detail);
  if (cause?.type === 'failed') throw Object.assign(new Error(cause.message), { code: cause.code });
  if (decoded.type !== 'done') throw new Error(`unexpected ${decoded.type}`);
  const stats = decoded.result.stats ?? (files?.type === 'written' ? files.stats : null);
  if (stats === null) throw new Error(`unexpected ${files?.type ?? 'missing'} reply from the thread writing the files`);
  return { ...stats, tarBytes: decoded.result.tarBytes, diffId: decoded.result.diffId };
}

export class UnpackPool {
  private readonly idle: PooledWorker[] = [];
  private readonly waiting: Array<(w: PooledWorker) => void> = [];
  private started = 0;
  private readonly shares: TenantShares;
  /** Threads that only ever write a layer's files for another thread (spareWriter). */
  private readonly idleWriters: PooledWorker[] = [];
  private writersStarted = 0;
  private readonly maxWriters: number;
  /** Layers whose files had a thread of their own (tests and benches read it). */
  splitLayers = 0;

  /** `stallMs`: a worker silent for this long during a job is terminated and the job fails. */
  constructor(
    size: number,
    private readonly stallMs = 120_000,
  ) {
    // One thread more than one tenant may use: a tenant alone unpacks `size` layers at once, and while
    // its layers hold those, another tenant's still get a thread.
    this.shares = new TenantShares(size + 1, size);
    this.maxWriters = Math.max(1, Math.floor(size / 2));
  }

  async run(job: UnpackJob): Promise<UnpackResult> {
    // A layer holds its thread for as long as its download lasts: no tenant holds them all.
    const release = await this.shares.take(job.requester ?? {}, job.signal);
    try {
      const worker = await this.take();
      let writer: PooledWorker | null = null;
      try {
        const source = await job.source();
        // Read only once the worker is ready (a new thread takes a moment): destroyed before that (an
        // abandoned pull), its error is kept for the read and must not be emitted to nobody.
        source.on('error', () => {});
        writer = this.spareWriter(job);
        return await worker.run(source, job, writer);
      } finally {
        if (writer) this.giveWriter(writer);
        this.give(worker);
      }
    } finally {
      release();
    }
  }

  /**
   * A second thread for a layer's files, from threads kept for that alone (one per two of the
   * pool's): only for a layer that asks (`writerThread`), and only if one is idle now. The pool's own
   * threads and their shares between tenants are as without it: a layer whose download trickles
   * holds at most a writer no other layer waits for.
   */
  private spareWriter(job: UnpackJob): PooledWorker | null {
    if (!job.writerThread) return null;
    // One that died while idle is replaced, not handed out.
    for (let last = this.idleWriters.at(-1); last?.dead; last = this.idleWriters.at(-1)) {
      this.idleWriters.pop();
      this.writersStarted--;
    }
    const writer = this.idleWriters.pop() ?? (this.writersStarted < this.maxWriters ? this.spawnWriter() : null);
    if (writer) this.splitLayers++;
    return writer;
  }

  /** Starts the workers ahead of the first pull (start-up is ~0.4 s under tsx); resolves when they are ready. */
  async warm(): Promise<void> {
    // The thread kept for other tenants is started when one needs it (take), as before it existed.
    while (this.started < this.shares.total - 1) this.idle.push(this.spawn());
    while (this.writersStarted < this.maxWriters) this.idleWriters.push(this.spawnWriter());
    await Promise.all([...this.idle, ...this.idleWriters].map((w) => w.ready));
  }

  async close(): Promise<void> {
    const workers = this.idle.splice(0);
    const writers = this.idleWriters.splice(0);
    this.started -= workers.length;
    this.writersStarted -= writers.length;
    await Promise.all([...workers, ...writers].map((w) => w.worker.terminate()));
  }

  private spawn(): PooledWorker {
    this.started++;
    return new PooledWorker(this.stallMs);
  }

  private spawnWriter(): PooledWorker {
    this.writersStarted++;
    return new PooledWorker(this.stallMs);
  }

  private take(): Promise<PooledWorker> {
    const ready = this.idle.pop();
    if (ready) return Promise.resolve(ready);
    if (this.started < this.shares.total) return Promise.resolve(this.spawn()); // the one kept for other tenants: started when needed
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private give(worker: PooledWorker): void {
    let next: PooledWorker = worker;
    if (worker.dead) {
      this.started--;
      if (this.waiting.length === 0) return;
      next = this.spawn();
    }
    const waiter = this.waiting.shift();
    if (waiter) waiter(next);
    else this.idle.push(next);
  }

  private giveWriter(writer: PooledWorker): void {
    if (writer.dead) this.writersStarted--;
    else this.idleWriters.push(writer);
  }
}

let shared: UnpackPool | null = null;

/**
 * The process-wide pool: min(4, max(2, CPUs)) workers, and one more for another tenant's layers
 * (tenant-shares.ts); and one writer thread per two workers.
 */
export function sharedUnpackPool(): UnpackPool {
  shared ??= new UnpackPool(Math.min(4, Math.max(2, availableParallelism())));
  return shared;
}
