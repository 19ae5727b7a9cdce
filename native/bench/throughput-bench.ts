/**
 * `npm run bench:throughput`: launches per second at concurrency 8, this tree's launcher against the
 * launcher of the day issue 13 was filed (issue-day-launcher.ts), side by side in one run: the
 * issue's "at least 3× today's" read on the machine at hand. Each measurement is its own process
 * (launch-throughput.ts), the two alternating which goes first each round so that load from
 * elsewhere hits both alike; the medians and their ratio are reported.
 *
 *   npm run bench:throughput -- [--rounds 4] [--launches 800] [--concurrency 8] [--command true|nop] [--json]
 *
 * --command nop: every side runs /bin/nop (no C library start-up) instead of busybox's /bin/true:
 * what each costs apart from the command's own start (busybox-rootfs.ts benchCommandPath()).
 *
 * Beside them, in the same rounds, the kernel floor (kernel-floor.ts): the same kernel objects per
 * launch made by the least code that can, no launcher around them. Its ratio to the issue-day launcher
 * is the most that any launcher keeping this isolation could reach on this machine.
 */
import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { midpointMedian as median } from '../../loadtest/lib/stats.ts';
import { ISSUE_DAY_COMMIT, issueDayLauncher } from './issue-day-launcher.ts';
import { flagValue, positiveFlag } from './bench-flags.ts';
import { benchCommandPath } from './busybox-rootfs.ts';

const here = dirname(new URL(import.meta.url).pathname);
const repoRoot = resolve(here, '../..');
const tsx = join(repoRoot, 'node_modules/.bin/tsx');
const args = process.argv.slice(2);
const json = args.includes('--json');

const rounds = positiveFlag(args, '--rounds', 4);
const launches = positiveFlag(args, '--launches', 800);
const concurrency = positiveFlag(args, '--concurrency', 8);
const commandName = flagValue(args, '--command', 'true')!;
const command = benchCommandPath(commandName); // refuses another name here, before any build

function log(line: string): void {
  (json ? process.stderr : process.stdout).write(`${line}\n`);
}

interface Measurement { launches_per_s: number; machine_cpu_ms_per_launch: number }

/** One measurement: a script printing launch-throughput.ts's JSON line, in a process of its own. */
function measure(what: string, script: string, scriptArgs: string[]): Measurement {
  const r = spawnSync(tsx, [join(here, script), ...scriptArgs, '--launches', String(launches), '--concurrency', String(concurrency), '--command', commandName], {
    cwd: repoRoot, encoding: 'utf8', maxBuffer: 16 << 20,
  });
  const last = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  if (r.status !== 0 || !last.startsWith('{')) throw new Error(`throughput of ${what} failed (exit ${r.status}): ${(r.stderr ?? '').trim().split('\n').slice(-10).join('\n')}`);
  const m = JSON.parse(last) as Measurement;
  if (!(m.launches_per_s > 0) || !(m.machine_cpu_ms_per_launch > 0)) throw new Error(`throughput of ${what}: no launches/s or CPU in ${last}`);
  return m;
}

const launcherSide = (nativeIndex: string) => () => measure(nativeIndex, 'launch-throughput.ts', ['--native', nativeIndex]);

/**
 * The issue-day launcher's v1 memory.limit_in_bytes write gave up on EINTR (the kernel's reclaim
 * interrupted by a signal to the writer; native/src/cgroup.cc retries it since): such a measurement of
 * it fails the whole bench (once in `npm run bench`, 2026-12-07 16:4x), so it is made again, once, and said.
 */
function retriedOnEintr(side: () => Measurement): () => Measurement {
  return () => {
    try {
      return side();
    } catch (e) {
      if (!/code: 'EINTR'/.test((e as Error).message)) throw e;
      log('the issue-day launcher failed a launch with EINTR from a cgroup write (it did not retry those): measured again');
      return side();
    }
  };
}

const sides = {
  issue_day: retriedOnEintr(launcherSide(issueDayLauncher(log))),
  now: launcherSide(join(repoRoot, 'native/index.ts')),
  floor: () => measure('the kernel floor', 'kernel-floor.ts', []),
};
type Side = keyof typeof sides;
const sideNames = Object.keys(sides) as Side[];
const runs: Record<Side, Measurement[]> = { issue_day: [], now: [], floor: [] };
log(`launches/s at concurrency ${concurrency} of ${command}, ${launches} launches per measurement, ${rounds} rounds: this tree against the issue-day launcher (${ISSUE_DAY_COMMIT.slice(0, 7)}) and the kernel floor (kernel-floor.c)`);
for (let round = 0; round < rounds; round++) {
  // each round starts one side further on, so that none always follows the same one
  const order = sideNames.map((_, i) => sideNames[(i + round) % sideNames.length]!);
  for (const side of order) {
    const m = sides[side]();
    runs[side].push(m);
    log(`round ${round + 1}: ${side.padEnd(9)} ${m.launches_per_s} launches/s, ${m.machine_cpu_ms_per_launch} ms machine CPU per launch`);
  }
}
const summary = (ms: Measurement[]) => ({
  median_launches_per_s: median(ms.map((m) => m.launches_per_s)),
  median_machine_cpu_ms_per_launch: Math.round(median(ms.map((m) => m.machine_cpu_ms_per_launch)) * 100) / 100,
  runs: ms,
});
const issueDay = summary(runs.issue_day);
const now = summary(runs.now);
const floor = summary(runs.floor);
const ratioTo = (a: { median_launches_per_s: number }, b: { median_launches_per_s: number }) => Math.round((a.median_launches_per_s / b.median_launches_per_s) * 100) / 100;
const ratio = ratioTo(now, issueDay);
const floorRatio = ratioTo(floor, issueDay);
const nowOfFloor = ratioTo(now, floor);
log(`median: now ${now.median_launches_per_s} launches/s (${now.median_machine_cpu_ms_per_launch} ms CPU each), issue day ${issueDay.median_launches_per_s} (${issueDay.median_machine_cpu_ms_per_launch} ms): ${ratio}× (issue 13: ≥ 3×)`);
log(`kernel floor ${floor.median_launches_per_s} launches/s (${floor.median_machine_cpu_ms_per_launch} ms CPU each): ${floorRatio}× the issue-day launcher, the most a launcher with this isolation could reach here; this tree runs at ${nowOfFloor} of it`);
if (json) process.stdout.write(`${JSON.stringify({ concurrency, command, launches, rounds, issue_day_commit: ISSUE_DAY_COMMIT, issue_day: issueDay, now, floor, ratio, floor_ratio: floorRatio, now_of_floor: nowOfFloor })}\n`);
