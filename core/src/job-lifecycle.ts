/**
 * Status transitions that both the API and the worker perform, built on JobStore's compare-and-set.
 */
import type { JobStore } from './job-store.ts';
import { isFinished, type JobDocument, type JobStatus } from './job-spec.ts';

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
