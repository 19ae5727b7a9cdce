/** CPU time from /proc, for the benches' "CPU per job" and "CPU per launch" figures. */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { procStatFields } from '../../core/src/proc-stat.ts';

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
  /** Interrupts: /proc/stat's irq + softirq (also in `sys`). */
  irq: number;
  idle: number;
}

/** The whole machine's CPU time so far (/proc/stat's first line), or null where it cannot be read. */
export function machineCpu(): MachineCpu | null {
  try {
    const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, idle, iowait, irq, softirq, steal] = cpu.map((x) => x * TICK_MS) as number[];
    return { busy: user! + nice! + system! + irq! + softirq! + steal!, user: user! + nice!, sys: system! + irq! + softirq!, irq: irq! + softirq!, idle: idle! + iowait! };
  } catch {
    return null;
  }
}

/**
 * CPU time so far (ms) of the kernel's own threads (kthreadd and its children: kworkers, ksoftirqd,
 * RCU, ...), where work a process starts lands later: a network namespace's cleanup, a cgroup's
 * release. A kernel thread that exits between two readings takes its time with it, so a difference
 * of two readings is at least what they did.
 */
export function kernelThreadsCpu(proc = '/proc'): number | null {
  let ms = 0;
  let seen = 0;
  let names: string[];
  try {
    names = readdirSync(proc);
  } catch {
    return null;
  }
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    let text: string;
    try {
      text = readFileSync(`${proc}/${name}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    const field = procStatFields(text); // ppid is field 4, utime 14, stime 15
    if (name !== '2' && field(4) !== '2') continue;
    ms += (Number(field(14)) + Number(field(15))) * TICK_MS;
    seen++;
  }
  return seen > 0 ? ms : null;
}
