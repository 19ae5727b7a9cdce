/**
 * Waiting for a job to finish (POST ?wait=true, DELETE's short grace): subscribe to the job's pings
 * first, then read, so a finish between the two is never missed. A watch can be opened before the
 * job is even created, to take the subscription off the request's critical path.
 */
import { isFinished, type CallbackState, type JobDocument } from '../../core/src/job-spec.ts';
import type { AppDeps } from './deps.ts';
import { Doorbell } from './job-events-hub.ts';
import { checkWorkerAlive } from './job-access.ts';

const LIVENESS_CHECK_MS = 5000;

export class JobWatch {
  private constructor(
    private readonly deps: AppDeps,
    readonly id: string,
    private readonly bell: Doorbell,
    readonly close: () => void,
    /** Watching through this process's inbox (a job not created yet, which will name it as its waiter). */
    readonly inbox: string | null = null,
  ) {}

  static async open(deps: AppDeps, id: string): Promise<JobWatch> {
    const bell = new Doorbell();
    // Only the end matters here: status changes and output do not wake the waiter.
    const unwatch = await deps.hub.watch(deps.keys.jobNotify(id), (what) => what === 'exit' && bell.ring());
    return new JobWatch(deps, id, bell, unwatch);
  }

  /**
   * For a job about to be created: its end will ping this process's inbox if the job is created with
   * `watch.inbox` as its waiter (JobStore.create), so there is nothing to subscribe. Without an open
   * inbox, the same as open().
   */
  static async beforeCreate(deps: AppDeps, id: string): Promise<JobWatch> {
    const inbox = deps.hub.inbox;
    if (!inbox) return JobWatch.open(deps, id);
    const bell = new Doorbell();
    let watch: JobWatch | null = null;
    let early: string | undefined;
    const stop = deps.hub.listenInbox(deps.keys.jobNotify(id), (_what, ended) => {
      if (ended !== undefined) {
        if (watch) watch.ended ??= ended;
        else early ??= ended;
      }
      bell.ring();
    });
    watch = new JobWatch(deps, id, bell, stop, inbox);
    watch.ended = early;
    return watch;
  }

  /** The job's end as its final transition sent it to our inbox (document and output), if it did. */
  private ended: string | undefined;

  /**
   * The finished document, or the current one when `timeoutMs` passes first; null if gone.
   * `withOutput`: after the exit ping, the document and the output are read in one round trip
   * (getDocWithOutput) and the output comes as `output`; without it (or when the job had ended
   * before the first read) the document has no `output`.
   */
  async untilFinished(timeoutMs: number, signal?: AbortSignal, withOutput = false): Promise<JobDocument | null> {
    const deadline = Date.now() + timeoutMs;
    let lastLivenessCheck = Date.now();
    // A job created with our inbox as its waiter cannot have ended unseen: no read before the first wait.
    let rang = this.inbox ? await this.bell.wait(Math.min(timeoutMs, LIVENESS_CHECK_MS), signal) : false;
    for (;;) {
      let doc: JobDocument | null;
      const ended = rang && withOutput && this.ended !== undefined ? endedWithOutput(this.ended) : null;
      if (ended) return ended; // sent with the exit ping: nothing to read
      if (rang && withOutput) {
        const read = await this.deps.store.getDocWithOutput(this.id);
        if (read?.output) return { ...read.doc, output: read.output };
        doc = read?.doc ?? null;
      } else {
        doc = await this.deps.store.getDoc(this.id);
      }
      if (!doc) return null;
      if (Date.now() - lastLivenessCheck > LIVENESS_CHECK_MS) {
        doc = await checkWorkerAlive(this.deps, doc);
        lastLivenessCheck = Date.now();
      }
      if (isFinished(doc.status)) return doc;
      const left = deadline - Date.now();
      if (left <= 0 || signal?.aborted) return doc;
      rang = await this.bell.wait(Math.min(left, LIVENESS_CHECK_MS), signal);
    }
  }
}

/**
 * The document and output of a job's end as transitionJob-2.lua sends it to a waiter's inbox; null
 * if it does not parse as such (the caller then reads the job as before).
 */
function endedWithOutput(ended: string): JobDocument | null {
  try {
    const end = JSON.parse(ended) as { doc: JobDocument; callback?: CallbackState; output: Array<[string, { data: string }]> };
    const doc = end.doc;
    if (!doc || !isFinished(doc.status) || !Array.isArray(end.output)) return null;
    if (end.callback && doc.callback) doc.callback = end.callback;
    const output = { stdout: '', stderr: '' };
    for (const [type, { data }] of end.output) if (type === 'stdout' || type === 'stderr') output[type] += data;
    return { ...doc, output };
  } catch {
    return null;
  }
}

export async function waitForFinish(deps: AppDeps, id: string, timeoutMs: number, signal?: AbortSignal): Promise<JobDocument | null> {
  const watch = await JobWatch.open(deps, id);
  try {
    return await watch.untilFinished(timeoutMs, signal);
  } finally {
    watch.close();
  }
}
