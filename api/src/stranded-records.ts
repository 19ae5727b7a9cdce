/**
 * Records a failed submission could not take back. A submission whose queue entry failed takes its
 * record back (JobStore.abandon) and gives its quota place back; when Redis failed that too, the
 * record stayed `queued` with no queue entry until its TTL: listed, counted against the tenant's
 * jobs-at-once quota, never run. A submission with an idempotencyKey is found again by the client's
 * retry (lost-submission.ts). One without is named by nothing the client holds (its answer was an
 * error), so nothing else can touch it: it is kept here and taken back once Redis answers again.
 *
 * Held in this process only, at most MAX_HELD: an API process that stops meanwhile leaves them to
 * their TTL, as before.
 */
import type { JobStore } from '../../core/src/job-store.ts';
import type { Logger } from '../../core/src/logger.ts';
import type { TenantQuotas } from '../../core/src/tenant-quota.ts';

const RETRY_MS = 1000;
const MAX_HELD = 10_000;

export class StrandedRecords {
  /** Job id → its tenant. */
  private readonly held = new Map<string, string>();
  private timer: NodeJS.Timeout | null = null;
  private retrying = false;

  constructor(
    private readonly store: JobStore,
    private readonly quotas: TenantQuotas,
    private readonly logger: Logger,
    private readonly retryMs = RETRY_MS,
  ) {}

  /** `id`'s record (of `tenant`) could not be taken back: try again every retryMs until Redis answers. */
  add(id: string, tenant: string): void {
    if (this.held.size >= MAX_HELD) {
      this.logger.error({ jobId: id, tenant }, 'a failed submission\'s record could not be taken back and too many are waiting for Redis: it stays queued until its TTL');
      return;
    }
    this.held.set(id, tenant);
    this.logger.warn({ jobId: id, tenant }, 'a failed submission\'s record could not be taken back (Redis failed): retrying until it answers');
    this.schedule();
  }

  private schedule(): void {
    if (this.timer || this.retrying) return;
    this.timer = setTimeout(() => void this.retry(), this.retryMs);
    this.timer.unref();
  }

  private async retry(): Promise<void> {
    this.timer = null;
    this.retrying = true;
    try {
      for (const [id, tenant] of this.held) {
        // false: a worker claimed it (its entry had gone out after all): it runs, and keeps its place.
        const takenBack = await this.store.abandon(id, tenant);
        if (takenBack) await this.quotas.release(tenant, id);
        this.held.delete(id);
        this.logger.info({ jobId: id, tenant, takenBack }, takenBack ? 'took back a failed submission\'s record' : 'a failed submission\'s job was claimed by a worker: it runs');
      }
    } catch {
      // Redis still fails: the rest waits for the next round.
    } finally {
      this.retrying = false;
      if (this.held.size > 0) this.schedule();
    }
  }
}
