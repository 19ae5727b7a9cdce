/**
 * CPU weight per tenant, not per job, among the jobs running on this host. Every job's cgroup starts
 * at the kernel's default weight (cgroup v1 cpu.shares 1024, v2 cpu.weight 100), so under contention
 * a tenant got CPU in proportion to how many jobs it ran: 7 jobs spinning beside another tenant's
 * one took 7/8 of the host (bench:neighbours, "cpu"). While more than one tenant has jobs running
 * here, each job of a tenant with n of them gets 1024 / n, and so each such tenant the same weight
 * in all; a job's `cpus` limit (its CPU quota) still caps it. While only one tenant runs jobs here
 * their weights do not matter (they are only compared with each other, and are all equal), and
 * nothing is written: the host's usual case of one tenant's jobs costs no cgroup write.
 */

/** A running job whose CPU weight can be set (native Launched.setCpuShares). */
export interface Weighted {
  setCpuShares(shares: number): boolean;
}

/** The kernel's default (cgroup v1 cpu.shares): every job starts at it. */
export const DEFAULT_SHARES = 1024;
const MIN_SHARES = 2;

export class TenantCpuShares {
  private readonly running = new Map<string, Set<Weighted>>();
  /** What each running job's weight is now (DEFAULT_SHARES until written). */
  private readonly applied = new Map<Weighted, number>();

  /** `job` of `tenant` started: the weights of every job are what the tenants' counts now give. */
  add(tenant: string, job: Weighted): void {
    let jobs = this.running.get(tenant);
    if (!jobs) this.running.set(tenant, (jobs = new Set()));
    jobs.add(job);
    this.applied.set(job, DEFAULT_SHARES);
    this.spread();
  }

  /** `job` of `tenant` has ended. */
  remove(tenant: string, job: Weighted): void {
    const jobs = this.running.get(tenant);
    if (!jobs?.delete(job)) return;
    this.applied.delete(job);
    if (jobs.size === 0) this.running.delete(tenant);
    this.spread();
  }

  /** The weight a job of `tenant` has now (for tests and logs). */
  sharesOf(job: Weighted): number | undefined {
    return this.applied.get(job);
  }

  private spread(): void {
    const contended = this.running.size > 1;
    for (const jobs of this.running.values()) {
      const shares = contended ? Math.max(MIN_SHARES, Math.round(DEFAULT_SHARES / jobs.size)) : DEFAULT_SHARES;
      for (const job of jobs) {
        if (this.applied.get(job) === shares) continue;
        // A job that ended meanwhile refuses (false): it is about to be removed, and its weight no longer matters.
        job.setCpuShares(shares);
        this.applied.set(job, shares);
      }
    }
  }
}
