/**
 * Where the API puts a job it accepts (pure; api/src/submit-placement.ts applies it): straight on the
 * own queue of a live host that holds the job's image and has a free slot and the memory for it
 * (the most free slots, then the most free memory), so the job starts there without another hop;
 * otherwise (no such host, cache-awareness off, no fresh view) on the shared queue, where the first
 * worker with room takes it and may still hand it to a holder once (worker/src/placement).
 */
import type { FleetState } from './fleet-snapshot.ts';
import { lookupKey } from './fleet-records.ts';

export function chooseAtSubmit(view: FleetState | null, image: string, memoryBytes: number): string | null {
  if (!view) return null;
  const holders = view.holders.get(lookupKey(image));
  if (!holders?.size) return null;
  let pick: FleetState['hosts'][number] | null = null;
  for (const h of view.hosts) {
    if (!holders.has(h.id) || h.slotsFree < 1 || h.memoryFree < memoryBytes) continue;
    if (!pick || h.slotsFree > pick.slotsFree || (h.slotsFree === pick.slotsFree && h.memoryFree > pick.memoryFree)) pick = h;
  }
  return pick?.id ?? null;
}
