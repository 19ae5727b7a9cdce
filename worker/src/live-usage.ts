/**
 * A running job's usage kept with its document while it runs (docker stats): every `everyMs` the
 * launcher reads the job's cgroup (Launched.usage()) and the store writes it beside the document
 * (JobStore.recordLiveUsage; the API shows it only while the job is `running`). A job shorter than
 * `everyMs` costs nothing.
 */
import type { JobStore } from '../../core/src/job-store.ts';
import type { Logger } from '../../core/src/logger.ts';
import type { Launched } from '../../native/index.ts';

export function watchLiveUsage(store: JobStore, id: string, launched: Pick<Launched, 'usage' | 'ended'>, everyMs: number, logger: Logger): void {
  if (everyMs <= 0) return;
  let writing = false;
  const timer = setInterval(() => {
    const u = launched.usage();
    if (!u || writing) return;
    writing = true; // a slow Redis gets one write at a time, not a queue of stale ones
    store.recordLiveUsage(id, { at: new Date().toISOString(), ...u })
      .catch((err: Error) => logger.debug({ jobId: id, err: err.message }, 'could not record live usage'))
      .finally(() => { writing = false; });
  }, everyMs);
  timer.unref();
  void launched.ended.then(() => clearInterval(timer));
}
