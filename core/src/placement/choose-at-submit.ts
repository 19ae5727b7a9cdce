/**
 * Where the API puts a job it accepts (pure; api/src/submit-placement.ts applies it): straight on the
 * own queue of a live host that holds the job's image and has a free slot and the memory for it
 * (the most free slots, then the most free memory), so the job starts there without another hop;
 * otherwise (no such host, cache-awareness off, no fresh view) on the shared queue, where the first
 * worker with room takes it and may still hand it to a holder once (worker/src/placement).
 * A job is not placed while an entry of its priority or better (`priority`: its queue priority,
 * 1 = best) waits on the shared queue: on a host's own queue it would start ahead of that entry, so a
 * tenant with a backlog would overtake the others there (fairness, P44).
 * When Redis says the host chosen has no slot after all (other API copies placed there: placeOn),
 * chooseInstead names another live host with room, which pulls the image if it lacks it.
 */
import type { FleetState } from './fleet-snapshot.ts';
import { lookupKey } from './fleet-records.ts';

export function chooseAtSubmit(view: FleetState | null, image: string, memoryBytes: number, priority = 1): string | null {
  if (!view) return null;
  if (view.bestWaiting != null && view.bestWaiting <= priority) return null;
  const holders = view.holders.get(lookupKey(image));
  if (!holders?.size) return null;
  let pick: FleetState['hosts'][number] | null = null;
  for (const h of view.hosts) {
    if (!holders.has(h.id) || h.slotsFree < 1 || h.memoryFree < memoryBytes) continue;
    if (!pick || h.slotsFree > pick.slotsFree || (h.slotsFree === pick.slotsFree && h.memoryFree > pick.memoryFree)) pick = h;
  }
  return pick?.id ?? null;
}

/**
 * After `full` had no slot for the job after all: a live host other than it with a free slot and the
 * memory (holders of the image first, then the most free slots, then the most free memory), or null
 * (the shared queue). Not the shared queue first: `full` may take the job back from there before the
 * jobs placed on it arrive, and then one of those waits for its slot.
 */
export function chooseInstead(view: FleetState, image: string, memoryBytes: number, full: string): { to: string; holds: boolean } | null {
  const holders = view.holders.get(lookupKey(image));
  let pick: { host: FleetState['hosts'][number]; holds: boolean } | null = null;
  for (const h of view.hosts) {
    if (h.id === full || h.slotsFree < 1 || h.memoryFree < memoryBytes) continue;
    const holds = holders?.has(h.id) ?? false;
    const key = [holds ? 1 : 0, h.slotsFree, h.memoryFree];
    const best = pick && [pick.holds ? 1 : 0, pick.host.slotsFree, pick.host.memoryFree];
    const k = best ? key.findIndex((x, i) => x !== best[i]) : -1;
    if (!best || (k !== -1 && key[k]! > best[k]!)) pick = { host: h, holds };
  }
  return pick && { to: pick.host.id, holds: pick.holds };
}
