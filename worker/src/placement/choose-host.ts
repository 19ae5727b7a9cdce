/**
 * The placement decision for one job a worker has just taken from a queue, from what it knows:
 * its own room, the live hosts' room, and which hosts hold the job's image. Pure, so the rules are
 * tested without Redis (choose-host.test.ts).
 *
 *   1. Memory above this host's whole budget: hand it to a live host whose budget fits (one with
 *      room first); none = it can never run: fail it (`exceeds_capacity`).
 *   2. Handed on once already: run it here (at most one hop).
 *   3. Cache-aware and the image is not here: hand it to a live host that holds it and has a free
 *      slot and the memory.
 *   4. It cannot start here now (no free slot or memory): hand it to a live host with room (one that
 *      holds the image first).
 *   5. Otherwise run it here (waiting for memory if needed).
 * Among candidates: the most free slots, then the most free memory.
 */
import type { HostRoom } from '../../../core/src/placement/fleet-records.ts';

export type Decision =
  | { action: 'run' }
  | { action: 'handoff'; to: string; reason: 'image' | 'capacity' }
  | { action: 'fail'; largestBudget: number };

export interface DecisionInput {
  memoryBytes: number;
  /** Hand-offs so far (0 or 1). */
  hops: number;
  imageCached: boolean;
  /** A slot and the memory are free here for it now. */
  startsNow: boolean;
  memoryTotal: number;
  cacheAware: boolean;
  /** Live hosts other than this one. */
  hosts: readonly HostRoom[];
  holders: ReadonlySet<string>;
}

/** Does this job need a look at the fleet at all? (Most jobs do not: no Redis round trip.) */
export function needsFleet(i: Pick<DecisionInput, 'memoryBytes' | 'hops' | 'imageCached' | 'startsNow' | 'memoryTotal' | 'cacheAware'>): boolean {
  if (i.memoryBytes > i.memoryTotal) return true;
  if (i.hops > 0) return false;
  return (i.cacheAware && !i.imageCached) || !i.startsNow;
}

export function chooseHost(i: DecisionInput): Decision {
  const m = i.memoryBytes;
  const hasRoom = (h: HostRoom) => h.slotsFree >= 1 && h.memoryFree >= m;
  if (m > i.memoryTotal) {
    const able = i.hosts.filter((h) => h.memoryTotal >= m);
    if (able.length === 0) return { action: 'fail', largestBudget: Math.max(i.memoryTotal, ...i.hosts.map((h) => h.memoryTotal)) };
    const to = best(able.filter(hasRoom), i.holders) ?? best(able, i.holders)!;
    return { action: 'handoff', to: to.id, reason: 'capacity' };
  }
  if (i.hops > 0) return { action: 'run' };
  const roomy = i.hosts.filter(hasRoom);
  if (i.cacheAware && !i.imageCached) {
    const holder = best(roomy.filter((h) => i.holders.has(h.id)), i.holders);
    if (holder) return { action: 'handoff', to: holder.id, reason: 'image' };
  }
  if (!i.startsNow) {
    const other = best(roomy, i.cacheAware ? i.holders : new Set());
    if (other) return { action: 'handoff', to: other.id, reason: 'capacity' };
  }
  return { action: 'run' };
}

/** Holders first, then the most free slots, then the most free memory; null when there is none. */
function best(hosts: readonly HostRoom[], holders: ReadonlySet<string>): HostRoom | null {
  let pick: HostRoom | null = null;
  for (const h of hosts) {
    if (!pick) pick = h;
    else {
      const a = [holders.has(h.id) ? 1 : 0, h.slotsFree, h.memoryFree];
      const b = [holders.has(pick.id) ? 1 : 0, pick.slotsFree, pick.memoryFree];
      const cmp = a.findIndex((x, k) => x !== b[k]!);
      if (cmp !== -1 && a[cmp]! > b[cmp]!) pick = h;
    }
  }
  return pick;
}
