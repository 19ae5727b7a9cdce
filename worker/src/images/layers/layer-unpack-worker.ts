/**
 * Unpack worker thread: extracts one layer at a time (LayerExtraction: decompression, diffID, tar
 * parsing and the synchronous file writes, all here), fed with the (already
 * digest-checked-as-it-streams) compressed bytes by the main thread, so several layers use several
 * cores and the main event loop stays free. Protocol in unpack-pool.ts: each chunk (most in a slot
 * of the ring shared with the main thread) is acknowledged once it is written and nothing here
 * holds a view of it any more (LayerExtraction keeps none past a step).
 *
 * A layer with a second thread (unpack-pool.ts): this thread gets `start` with a `tarRing` and puts
 * the tar bytes there; the other gets `write` and writes the files from the ring, blocking until
 * the ring ends or is aborted, then replies `written` (or rejected / failed).
 */
import { parentPort } from 'node:worker_threads';
import { ByteRing, RingClosedError } from './byte-ring.ts';
import { feedChunk, LayerExtraction, type ExtractionEnd } from './layer-extraction.ts';
import { TarWriting, writeFilesFromRing } from './tar-writing.ts';
import { RING_CLOSED, SLOT_BYTES, type WorkerReply, type WorkerRequest } from './unpack-pool.ts';

/** Marks a rejection of the layer itself (its `message` is the detail), as opposed to an I/O failure. */
class LayerRejected extends Error {}

const port = parentPort;
if (!port) throw new Error('layer-unpack-worker.ts must run in a worker thread');

interface Job {
  id: number;
  extraction: LayerExtraction;
  /** Chunks are handled one after the other, in order. */
  queue: Promise<void>;
  /** Set once the job has replied done/rejected/failed: later messages of the job are ignored. */
  settled: boolean;
  /** An abort from the main thread: the chunk being written stops at its next step. */
  aborted: boolean;
  ring: SharedArrayBuffer;
  /** Set to this job's id by the main thread when it aborts: seen between entries, while this thread writes (no message is read then). */
  abortFlag: Int32Array;
}

/** Why the job stops now, if it does: an abort the main thread sent or flagged. */
function stopReason(job: Job): Error | null {
  return job.aborted || Atomics.load(job.abortFlag, 0) === job.id ? new Error('unpack aborted') : null;
}

let current: Job | null = null;

function reply(message: WorkerReply): void {
  port!.postMessage(message);
}

/** The final reply for a failure: a rejection of the layer, or anything else with its code. */
function failure(job: number, e: unknown): WorkerReply {
  if (e instanceof LayerRejected) return { job, type: 'rejected', detail: e.message };
  const code = e instanceof RingClosedError ? RING_CLOSED : (e as { code?: string }).code;
  return { job, type: 'failed', message: (e as Error).message ?? String(e), code };
}

function settle(job: Job, outcome: { result: ExtractionEnd } | { error: unknown }): void {
  if (job.settled) return;
  job.settled = true;
  if ('result' in outcome) {
    reply({ job: job.id, type: 'done', result: outcome.result });
    return;
  }
  job.extraction.abort();
  reply(failure(job.id, outcome.error));
}

/** Appends `work` to the job's queue; a failure settles the job and skips what follows. */
function enqueue(job: Job, work: () => Promise<void> | void): void {
  job.queue = job.queue.then(async () => {
    if (job.settled) return;
    try {
      await work();
    } catch (e) {
      settle(job, { error: e });
    }
  });
}

port.postMessage({ job: 0, type: 'ready' } satisfies WorkerReply);

port.on('message', (message: WorkerRequest) => {
  switch (message.type) {
    case 'start': {
      // A job still running here was abandoned by the main thread (it sends abort first): stop it.
      if (current) current.aborted = true;
      const job: Job = {
        id: message.job,
        extraction: null as unknown as LayerExtraction,
        queue: Promise.resolve(),
        settled: false,
        aborted: false,
        ring: message.ring,
        abortFlag: new Int32Array(message.abortFlag),
      };
      job.extraction = new LayerExtraction(message.targetDir, {
        compression: message.compression,
        diffId: message.diffId,
        limits: message.limits,
        ...(message.chown !== undefined ? { chown: message.chown } : {}),
        ...(message.tarRing ? { tarRing: message.tarRing } : {}),
        fail: (detail) => new LayerRejected(detail),
        stopped: () => stopReason(job),
      });
      current = job;
      return;
    }
    case 'chunk': {
      const job = current;
      if (!job) return;
      const slot = 'slot' in message ? message.slot : undefined;
      const data = 'slot' in message ? new Uint8Array(job.ring, message.slot * SLOT_BYTES, message.length) : message.data;
      enqueue(job, () => feedChunk(job.extraction, data, () => stopReason(job)));
      // Acknowledged once handled (or skipped after a failure): the slot is the main thread's again.
      job.queue = job.queue.then(() => reply({ job: job.id, type: 'ack', ...(slot !== undefined ? { slot } : {}) }));
      return;
    }
    case 'end': {
      const job = current;
      if (!job) return;
      enqueue(job, () => settle(job, { result: job.extraction.end(message.diffId) }));
      return;
    }
    case 'write': {
      // Synchronous to the end: nothing else comes to this thread while it writes a layer's files.
      const ring = new ByteRing(message.ring);
      try {
        const writing = new TarWriting(message.targetDir, {
          maxEntries: message.limits.maxEntries,
          fail: (detail) => new LayerRejected(detail),
          ...(message.chown !== undefined ? { chown: message.chown } : {}),
          // An abort (the pull's end, or the other thread's failure) stops the files between entries.
          stopped: () => (ring.aborted ? new RingClosedError('aborted') : null),
        });
        reply({ job: message.job, type: 'written', stats: writeFilesFromRing(ring, writing) });
      } catch (e) {
        ring.stop(); // the decompressing thread must not wait for room that never comes
        reply(failure(message.job, e));
      }
      return;
    }
    case 'abort': {
      const job = current;
      if (!job) return;
      job.aborted = true;
      enqueue(job, () => {
        throw new Error('unpack aborted');
      });
      return;
    }
  }
});
