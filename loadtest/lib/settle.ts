/**
 * Between benches (`npm run bench`): a bench can leave work behind that the kernel finishes later
 * (released network namespaces and cgroups, dirty pages of its file systems), which a bench started
 * at once would measure as its own. settle() writes dirty pages back (`sync`), then waits until
 * the machine's CPUs are nearly idle over a short window, or gives up after `maxMs` (another workload
 * on the host: the bench then runs anyway, and the caller says so).
 */
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { machineCpu } from './machine-cpu.ts';

export interface Settled {
  /** Whether the machine got below `idleBelow` before `maxMs`. */
  quiet: boolean;
  seconds: number;
  /** The busy share of all CPUs over the last window, 0–1. */
  busy: number;
}

export async function settle({ idleBelow = 0.1, windowMs = 500, maxMs = 20_000 } = {}): Promise<Settled> {
  const t0 = performance.now();
  try {
    execFileSync('sync', { stdio: 'ignore' });
  } catch {
    // nothing to write back, or no sync(1): the CPU check below still applies
  }
  const cpus = Math.max(1, os.availableParallelism());
  for (;;) {
    const a = machineCpu();
    const start = performance.now();
    await new Promise((r) => setTimeout(r, windowMs));
    const b = machineCpu();
    if (!a || !b) return { quiet: false, seconds: round((performance.now() - t0) / 1000), busy: NaN };
    // /proc/stat counts in clock ticks: a short window can read a little over or under.
    const busy = Math.min(1, Math.max(0, (b.busy - a.busy) / ((performance.now() - start) * cpus)));
    const elapsed = performance.now() - t0; // one reading for the answer and the give-up check
    const seconds = round(elapsed / 1000);
    if (busy < idleBelow) return { quiet: true, seconds, busy: round(busy) };
    if (elapsed >= maxMs) return { quiet: false, seconds, busy: round(busy) };
  }
}

const round = (x: number) => Math.round(x * 100) / 100;
