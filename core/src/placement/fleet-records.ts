/**
 * What placement keeps in Redis about the fleet ({workers} slot, core/src/redis-keys.ts), written by
 * the workers (worker/src/placement/fleet.ts) and read by the workers and the API:
 *   - capacity hash: worker id → its room (free slots and memory) and when it was written;
 *   - holders:<image key>: the workers whose cache holds the image; holds:<id>: the keys a worker is in.
 */
import { parseImageReference } from '../image-ref.ts';

/** One host's room, as the capacity hash holds it. */
export interface CapacitySnapshot {
  slotsTotal: number;
  /** Slots a new job could have now (0 while the host takes none: pulls or memory at their bound). */
  slotsFree: number;
  memoryTotal: number;
  memoryFree: number;
}

export interface HostRoom extends CapacitySnapshot {
  id: string;
}

/** The keys under which an image is indexed: its canonical reference and, when known, its digest. */
export function imageKeys(reference: string, digest?: string | null): string[] {
  const ref = parseImageReference(reference);
  return [...new Set([ref.canonical, ...(ref.digest ? [ref.digest] : []), ...(digest ? [digest] : [])])];
}

/** The one key a job's image is looked up by: its digest when pinned, else its canonical reference. */
export function lookupKey(reference: string): string {
  const ref = parseImageReference(reference);
  return ref.digest ?? ref.canonical;
}

/**
 * A job was sent to `host` on the strength of a view of the fleet that others decide by too: count it
 * against the host's room in that view, so a burst decided before the next read does not all go there.
 */
export function takeRoom(hosts: HostRoom[], host: string, memoryBytes: number): void {
  const h = hosts.find((x) => x.id === host);
  if (!h) return;
  h.slotsFree -= 1;
  h.memoryFree -= memoryBytes;
}

/** A capacity hash value for `room`, written at `now`. */
export function encodeRoom(room: CapacitySnapshot, now: number): string {
  return JSON.stringify({ s: room.slotsFree, st: room.slotsTotal, m: room.memoryFree, mt: room.memoryTotal, t: now });
}

/** A capacity hash value read back (null when malformed), with the time it was written. */
export function parseRoom(raw: string): (CapacitySnapshot & { at: number }) | null {
  try {
    const v = JSON.parse(raw) as Record<string, unknown>;
    if (![v.s, v.st, v.m, v.mt, v.t].every((x) => typeof x === 'number')) return null;
    return { slotsFree: v.s as number, slotsTotal: v.st as number, memoryFree: v.m as number, memoryTotal: v.mt as number, at: v.t as number };
  } catch {
    return null;
  }
}

/** The live hosts in a capacity hash (written within `liveMs` of `now`), except `self`. */
export function liveHosts(capacity: Record<string, string>, now: number, liveMs: number, self?: string): HostRoom[] {
  const hosts: HostRoom[] = [];
  for (const [id, raw] of Object.entries(capacity)) {
    if (id === self) continue;
    const v = parseRoom(raw);
    if (v && now - v.at <= liveMs) hosts.push({ id, slotsFree: v.slotsFree, slotsTotal: v.slotsTotal, memoryFree: v.memoryFree, memoryTotal: v.memoryTotal });
  }
  return hosts;
}
