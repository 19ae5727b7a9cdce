/**
 * What the launcher reports at a job's exit besides how the job ended: processes it found left in
 * the job's cgroup (and killed), and a cgroup it could not remove. Both are logged with the job id
 * and counted; a group left behind is swept later — every `retryMs` while one is left — by sweep(),
 * which never touches the group of a job this process still runs (native/index.ts).
 */
import type { Logger } from '../../core/src/logger.ts';
import type { WorkerMetrics } from '../../core/src/metrics.ts';
import { sweep, type ExitInfo, type LaunchOptions, type SweepResult } from '../../native/index.ts';

export interface LauncherCleanupDeps {
  /** The worker's launch options: sweep() works below their cgroupParent. */
  launchOptions: LaunchOptions;
  logger: Logger;
  metrics: Pick<WorkerMetrics, 'leftoverProcesses' | 'cleanupFailures' | 'sweptCgroups'>;
  /** Wait before a sweep after a failed removal, and between sweeps while a group is left. Default 30 s. */
  retryMs?: number;
}

export type ExitCleanup = Pick<ExitInfo, 'leftoverProcesses' | 'cleanupError'>;

const DEFAULT_RETRY_MS = 30_000;

export class LauncherCleanup {
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(private readonly deps: LauncherCleanupDeps) {}

  /** Log and count what the launcher reported at `jobId`'s exit; schedule a sweep for a group left behind. */
  report(jobId: string, exit: ExitCleanup): void {
    const { logger, metrics } = this.deps;
    if (exit.leftoverProcesses > 0) {
      metrics.leftoverProcesses.inc(exit.leftoverProcesses);
      logger.warn({ jobId, leftoverProcesses: exit.leftoverProcesses }, 'processes outlived the job\'s pid 1 in its cgroup; the launcher killed them');
    }
    const e = exit.cleanupError;
    if (e) {
      metrics.cleanupFailures.inc({ kind: e.code });
      logger.warn({ jobId, kind: e.code, path: e.path, err: e }, 'the job\'s cgroup could not be removed; a sweep will retry');
      this.schedule();
    }
  }

  /** Sweep now (leftover groups of jobs no longer running); keeps sweeping every retryMs while a group is left. */
  async sweepNow(): Promise<SweepResult> {
    this.cancelTimer();
    const r = await sweep(this.deps.launchOptions);
    if (r.cgroups > 0) {
      this.deps.metrics.sweptCgroups.inc(r.cgroups);
      this.deps.logger.info({ cgroups: r.cgroups, processes: r.processes, left: r.left }, 'swept leftover job cgroups');
    }
    if (r.left > 0) this.schedule();
    return r;
  }

  /** No more sweeps (worker shutdown). */
  stop(): void {
    this.stopped = true;
    this.cancelTimer();
  }

  private schedule(): void {
    if (this.timer || this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.sweepNow().catch((err: unknown) => {
        this.deps.logger.error({ err }, 'sweeping leftover job cgroups failed');
        this.schedule();
      });
    }, this.deps.retryMs ?? DEFAULT_RETRY_MS);
    this.timer.unref();
  }

  private cancelTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
