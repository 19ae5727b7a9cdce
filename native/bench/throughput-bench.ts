/**
 * `npm run bench:throughput`: launches per second at concurrency 8, this tree's launcher against the
 * launcher of the day issue 13 was filed (issue-day-launcher.ts), side by side in one run: the
 * issue's "at least 3× today's" read on the machine at hand. Each measurement is its own process
 * (launch-throughput.ts), the two alternating which goes first each round so that load from
 * elsewhere hits both alike; the medians and their ratio are reported.
 *
 *   npm run bench:throughput -- [--rounds 4] [--launches 800] [--concurrency 8] [--json]
 */
import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { midpointMedian as median } from '../../loadtest/lib/stats.ts';
import { ISSUE_DAY_COMMIT, issueDayLauncher } from './issue-day-launcher.ts';

const here = dirname(new URL(import.meta.url).pathname);
const repoRoot = resolve(here, '../..');
const tsx = join(repoRoot, 'node_modules/.bin/tsx');
const args = process.argv.slice(2);
const json = args.includes('--json');

function count(name: string, fallback: number): number {
  const i = args.indexOf(name);
  const v = i >= 0 ? Number(args[i + 1]) : fallback;
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer`);
  return v;
}

const rounds = count('--rounds', 4);
const launches = count('--launches', 800);
const concurrency = count('--concurrency', 8);

function log(line: string): void {
  (json ? process.stderr : process.stdout).write(`${line}\n`);
}

function measure(nativeIndex: string): number {
  const r = spawnSync(tsx, [join(here, 'launch-throughput.ts'), '--native', nativeIndex, '--launches', String(launches), '--concurrency', String(concurrency)], {
    cwd: repoRoot, encoding: 'utf8', maxBuffer: 16 << 20,
  });
  const last = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  if (r.status !== 0 || !last.startsWith('{')) throw new Error(`throughput of ${nativeIndex} failed (exit ${r.status}): ${(r.stderr ?? '').trim().split('\n').slice(-10).join('\n')}`);
  const perSecond = (JSON.parse(last) as { launches_per_s: number }).launches_per_s;
  if (!Number.isFinite(perSecond) || perSecond <= 0) throw new Error(`throughput of ${nativeIndex}: no launches/s in ${last}`);
  return perSecond;
}

const sides = { issue_day: issueDayLauncher(log), now: join(repoRoot, 'native/index.ts') };
const runs: Record<keyof typeof sides, number[]> = { issue_day: [], now: [] };
log(`launches/s at concurrency ${concurrency}, ${launches} launches per measurement, ${rounds} rounds: this tree against the issue-day launcher (${ISSUE_DAY_COMMIT.slice(0, 7)})`);
for (let round = 0; round < rounds; round++) {
  const order: Array<keyof typeof sides> = round % 2 === 0 ? ['issue_day', 'now'] : ['now', 'issue_day'];
  for (const side of order) {
    const perSecond = measure(sides[side]);
    runs[side].push(perSecond);
    log(`round ${round + 1}: ${side.padEnd(9)} ${perSecond} launches/s`);
  }
}
const issueDay = median(runs.issue_day);
const now = median(runs.now);
const ratio = Math.round((now / issueDay) * 100) / 100;
log(`median: now ${now}, issue day ${issueDay} launches/s: ${ratio}× (issue 13: ≥ 3×)`);
if (json) {
  process.stdout.write(`${JSON.stringify({ concurrency, launches, rounds, issue_day_commit: ISSUE_DAY_COMMIT, issue_day: { median_launches_per_s: issueDay, runs: runs.issue_day }, now: { median_launches_per_s: now, runs: runs.now }, ratio })}\n`);
}
