/**
 * A worker's pull capacity shared fairly between tenants: its pull permits (SBX_PULL_CONCURRENCY,
 * pull/pull-bounds.ts) and its unpack threads (layers/unpack-pool.ts). A pull holds both for as long
 * as its registry keeps sending a little (up to SBX_PULL_TIMEOUT_MS), so given first come, first
 * served, a tenant naming images on a registry that trickles held all of them, and no other tenant's
 * image could be pulled on that worker. Here:
 * - a tenant holds at most `perTenant` of the `total` shares at once, so `total - perTenant` are
 *   always left for the others (pull permits: one of SBX_PULL_CONCURRENCY; unpack threads: one
 *   thread more than a tenant may use, so one tenant alone unpacks as many layers at once as before);
 * - a returned share goes to the waiter with the lowest priority value (the job's queue priority:
 *   1 + its tenant's active jobs, P44) whose tenant may take one, the longest waiting first among equals.
 */
export interface Requester {
  /** Whose pull it is; pulls without one (pre-pulls) count as one tenant of their own. */
  tenant?: string;
  /** The job's queue priority (lower goes first); default 0. */
  priority?: number;
}

interface Waiter {
  tenant: string;
  priority: number;
  grant: () => void;
}

const NO_TENANT = '\u0000';

export class TenantShares {
  private free: number;
  private readonly held = new Map<string, number>();
  private readonly waiting: Waiter[] = [];
  /** `perTenant`: the most shares one tenant holds at once (at least 1, at most `total`). */
  constructor(
    readonly total: number,
    private readonly perTenant: number,
  ) {
    this.free = total;
  }

  /** A share for `who`, at once or in its turn; rejects (and leaves the queue) when `signal` aborts first. Returns its release. */
  take(who: Requester, signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const tenant = who.tenant ?? NO_TENANT;
    if (this.free > 0 && this.mayTake(tenant)) return Promise.resolve(this.grantTo(tenant));
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        tenant,
        priority: who.priority ?? 0,
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve(this.grantTo(tenant));
        },
      };
      const onAbort = () => {
        const at = this.waiting.indexOf(waiter);
        if (at >= 0) this.waiting.splice(at, 1);
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      let at = this.waiting.length;
      while (at > 0 && this.waiting[at - 1]!.priority > waiter.priority) at--;
      this.waiting.splice(at, 0, waiter);
    });
  }

  /** Whether take() for `who` would wait now (no free share, or its tenant holds its most). */
  wouldWait(who: Requester): boolean {
    return !(this.free > 0 && this.mayTake(who.tenant ?? NO_TENANT));
  }

  private mayTake(tenant: string): boolean {
    return (this.held.get(tenant) ?? 0) < this.perTenant;
  }

  private grantTo(tenant: string): () => void {
    this.free--;
    this.held.set(tenant, (this.held.get(tenant) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = this.held.get(tenant)! - 1;
      if (left > 0) this.held.set(tenant, left);
      else this.held.delete(tenant);
      this.free++;
      this.handOut();
    };
  }

  /** Free shares to the first waiters, in order, whose tenants may take one. */
  private handOut(): void {
    for (let i = 0; i < this.waiting.length && this.free > 0; ) {
      const w = this.waiting[i]!;
      if (!this.mayTake(w.tenant)) {
        i++;
        continue;
      }
      this.waiting.splice(i, 1);
      w.grant();
    }
  }
}
