/** CPU time from /proc, for the benches' "CPU per job" and "CPU per launch" figures. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** ms per clock tick of /proc's times (USER_HZ). */
export const TICK_MS = 1000 / Number((() => {
  try {
    return execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim();
  } catch {
    return '100';
  }
})());

export interface MachineCpu {
  /** Everything but idle and iowait: every process and kernel thread, interrupts, steal. ms since boot. */
  busy: number;
  user: number;
  sys: number;
  idle: number;
}

/** The whole machine's CPU time so far (/proc/stat's first line), or null where it cannot be read. */
export function machineCpu(): MachineCpu | null {
  try {
    const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, idle, iowait, irq, softirq, steal] = cpu.map((x) => x * TICK_MS) as number[];
    return { busy: user! + nice! + system! + irq! + softirq! + steal!, user: user! + nice!, sys: system! + irq! + softirq!, idle: idle! + iowait! };
  } catch {
    return null;
  }
}
