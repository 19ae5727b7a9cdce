import { readFileSync } from 'node:fs';
import { procStatFields } from '../../core/src/proc-stat.ts';

/** Whether a process of this host exists (EPERM: it exists but is not ours to signal). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A process's start time in clock ticks since boot (/proc/<pid>/stat field 22), or null (no /proc, or no such process). */
export function processStart(pid: number | 'self'): string | null {
  try {
    return procStatFields(readFileSync(`/proc/${pid}/stat`, 'utf8'))(22) ?? null;
  } catch {
    return null;
  }
}

/** This process's start time (processStart('self')), read once. */
export const SELF_START = processStart('self');

/**
 * Whether the process that wrote `pid` and `start` (its processStart) is gone: no such pid, or one
 * that started at another time (the pid was reused: a container's worker is pid 1 after every
 * restart). A null `start` (written where /proc was unavailable) trusts the pid alone.
 */
export function processGone(pid: number, start: string | null): boolean {
  if (!Number.isInteger(pid) || pid <= 0 || !processAlive(pid)) return true;
  if (start === null) return false;
  const now = processStart(pid);
  return now !== null && now !== start;
}
