/**
 * Status transitions that both the API and the worker perform, built on JobStore's compare-and-set.
 */
import type { JobStore } from './job-store.ts';
import { attemptOf, type JobAttempts } from './job-attempts.ts';
import { isFinished, type JobAttempt, type JobDocument, type JobStatus } from './job-spec.ts';

/** Finish a job that has not started or whose worker is gone; false if it moved on meanwhile. */
export async function finishJob(
  store: JobStore,
  doc: JobDocument,
  status: Extract<JobStatus, 'cancelled' | 'error'>,
  error: { code: string; message: string } | null,
  now = new Date(),
): Promise<JobDocument | null> {
  if (isFinished(doc.status)) return null;
  const next: JobDocument = { ...doc, status, error, timings: { ...doc.timings, finishedAt: now.toISOString() } };
  const result = await store.transition(next, [doc.status], 'exit');
  return result === 'ok' ? next : null;
}

export const WORKER_LOST = {
  code: 'worker_lost',
  message: 'the worker running this job stopped before it finished; submit the job again',
};

/** The error an attempt that was queued again ended with, in the job's `history`. */
export const WORKER_LOST_BEFORE_START = {
  code: 'worker_lost',
  message: 'the worker was lost before the command started; the job was queued again',
};

/** What settling a lost worker's job needs: its attempts, a way to queue it again, and how often. */
export interface LostJobRecovery {
  attempts: JobAttempts;
  /** Adds the queue entry of attempt `attempt` (idempotent per attempt: core/src/job-queue.ts). */
  enqueue(id: string, attempt: number): Promise<void>;
  /** SBX_LOST_JOB_REQUEUES: how many times one job may be queued again (0 = never). */
  maxRequeues: number;
}

export type LostJobOutcome = { outcome: 'requeued' | 'lost' | 'cancelled'; doc: JobDocument };

/**
 * The job `doc` shows on a worker found lost (no heartbeat, or restarted after a crash). If its
 * command never started (still `pulling`, no start recorded: job-attempts.ts) and it has requeues
 * left, it goes back to the queue as attempt n+1, its `history` naming the lost worker; otherwise
 * it ends error/worker_lost (cancelled if a cancel was pending). Every step is a compare-and-set on
 * (status, attempt), so the janitors of several workers, API readers and a worker that was only
 * slow can race on it: one wins, the others see it moved on (null).
 */
export async function settleLostJob(store: JobStore, recovery: LostJobRecovery | null, doc: JobDocument, now = new Date()): Promise<LostJobOutcome | null> {
  if (isFinished(doc.status) || !doc.worker) return null;
  const attempt = attemptOf(doc);
  let cancel = false;
  if (recovery && doc.status === 'pulling' && attempt <= recovery.maxRequeues) {
    const next = requeuedDocument(doc, doc.worker, now);
    await recovery.attempts.intend(doc.id, now.getTime());
    const result = await recovery.attempts.requeue(next, attempt);
    if (result === 'ok') {
      await recovery.enqueue(doc.id, attemptOf(next));
      await recovery.attempts.done(doc.id);
      return { outcome: 'requeued', doc: next };
    }
    await recovery.attempts.done(doc.id);
    if (result !== 'started' && result !== 'cancel') return null; // moved on: someone else's now
    cancel = result === 'cancel';
  }
  const finished = cancel ? await finishJob(store, doc, 'cancelled', null, now) : await finishJob(store, doc, 'error', WORKER_LOST, now);
  return finished ? { outcome: cancel ? 'cancelled' : 'lost', doc: finished } : null;
}

/** Attempt n+1 of a job whose worker was lost: queued again, the lost attempt kept in `history`. */
export function requeuedDocument(doc: JobDocument, lostWorker: string, now: Date): JobDocument {
  const attempt = attemptOf(doc);
  const lost: JobAttempt = { attempt, worker: lostWorker, status: doc.status, endedAt: now.toISOString(), error: WORKER_LOST_BEFORE_START };
  const { placement: _placement, ...rest } = doc; // how the lost attempt was placed: the next one is placed anew
  return {
    ...rest,
    status: 'queued',
    worker: null,
    imageDigest: null,
    timings: { ...doc.timings, startedAt: null, finishedAt: null, queueMs: null, pullMs: null, startMs: null },
    attempts: attempt + 1,
    history: [...(doc.history ?? []), lost],
  };
}

/**
 * Requeues a crash left half done (the job queued again, its queue entry maybe never added): intents
 * older than `olderThanMs` whose job is still queued in a later attempt get their entry (idempotent).
 */
export async function finishPendingRequeues(store: JobStore, recovery: LostJobRecovery, olderThanMs: number, now = Date.now()): Promise<number> {
  let fixed = 0;
  for (const id of await recovery.attempts.stale(olderThanMs, now)) {
    const doc = await store.getDoc(id);
    if (doc?.status === 'queued' && attemptOf(doc) > 1) {
      await recovery.enqueue(id, attemptOf(doc));
      fixed++;
    }
    await recovery.attempts.done(id);
  }
  return fixed;
}
