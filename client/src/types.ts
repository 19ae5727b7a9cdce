/**
 * What the client sends and reads, as the API's contract defines it (../shared/design/api.md).
 * The job shapes are core's zod-inferred types, imported as types only: nothing of core runs here.
 */
import type { JobDocument, JobRequest, JobStatus, OutputFileInfo } from '../../core/src/job-spec.ts';

export type { JobRequest, JobStatus, OutputFileInfo };

/** One collected output file with its bytes (SbxClient.outputFiles). */
export type OutputFile = OutputFileInfo & { data: Buffer };

/** The job document; `queuePosition` is present while the job is queued, where the API reports it. */
export type Job = JobDocument & { queuePosition?: number | null };

export const FINISHED: readonly JobStatus[] = ['succeeded', 'failed', 'timeout', 'oom', 'cancelled', 'error'];
export const isFinished = (status: JobStatus): boolean => FINISHED.includes(status);

export interface JobPage {
  items: Job[];
  nextCursor: string | null;
}

/** SbxClient.cancel: stop a running job gracefully (docker stop) instead of killing it at once. */
export interface CancelOptions {
  graceMs?: number;
  signal?: JobRequest['stopSignal'];
}

export interface ListOptions {
  status?: JobStatus;
  limit?: number;
  cursor?: string;
}

export interface CachedImage {
  image: string;
  digest: string;
  sizeBytes: number;
  workers: string[];
  lastUsedAt: string;
}

export interface WorkerInfo {
  id: string;
  host: string;
  pid?: number;
  slots: { total: number; free: number };
  runningJobs: string[];
  cachedBytes: number;
  lastHeartbeat: string;
  startedAt?: string;
}

/** What POST /v1/images and DELETE /v1/images/{digest} answer: the workers told to do it. */
export interface ImageAction {
  image?: string;
  digest?: string;
  workers: string[];
}

/** One Server-Sent Event of a job's stream, typed by its `event:` name. Events with an `id` are the job's record: each comes exactly once. */
export type JobEvent =
  | { type: 'status'; id: string; status: JobStatus; queuePosition?: number | null }
  | { type: 'stdout' | 'stderr'; id: string; data: string }
  | { type: 'exit'; id: string; job: Job }
  /**
   * The job's place in the queue (1 = next), null once it left the queue, and its estimated wait
   * (from how fast the place has moved since the stream began; null until it has). Not part of the
   * job's record (no id): sent live when it changes, again after a reconnection.
   */
  | { type: 'queue'; id: null; position: number | null; etaMs: number | null }
  /** An event this client does not know (a newer API): its name, its id if it has one, its parsed data. */
  | { type: 'unknown'; id: string | null; event: string; data: unknown };

/** A raw HTTP answer (`request()`): any status, body parsed as JSON when it is JSON. */
export interface ApiAnswer<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
}
