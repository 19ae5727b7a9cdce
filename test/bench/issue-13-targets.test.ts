/**
 * `npm run bench`'s summary says which of issue 13's targets its run met, read from the benches'
 * own results: a figure past its target is "not met", a bench that did not run is "not measured"
 * (never "met"), and throughput with errors is not met whatever its rate.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatTargets, readTargets } from '../../loadtest/lib/issue-13-targets.ts';

const launcher = { sbx: { median_ms: 1.494 }, ratio_vs_bwrap: 0.454, ratio_vs_crun: 0.224, throughput: { launches_per_s: 471 } };
const e2e = { wait: { p50_ms: 4.07, p99_ms: 9.53 }, first_stdout: { p50_ms: 6.35 }, throughput: { jobs_per_s: 309.25, errors: 0 } };
const pull = { ratio: 0.322, ratio_zstd: 0.25 };
const throughput = { ratio: 0.99 };

const byTarget = (readings: ReturnType<typeof readTargets>) => Object.fromEntries(readings.map((r) => [r.from, r.met]));

test('each target is read from its bench\'s figure: met at or under it, not met past it', () => {
  const met = byTarget(readTargets({ launcher: { result: launcher }, throughput: { result: throughput }, e2e: { result: e2e }, pull: { result: pull } }));
  assert.deepEqual(met, {
    'launcher.sbx.median_ms': true,
    'launcher.ratio_vs_bwrap': true,
    'launcher.ratio_vs_crun': false,
    'launcher.throughput.launches_per_s': false,
    'throughput.ratio': false,
    'e2e.wait.p50_ms': true,
    'e2e.wait.p99_ms': true,
    'e2e.first_stdout.p50_ms': true,
    'e2e.throughput.jobs_per_s': true,
    'pull.ratio': false,
    'pull.ratio_zstd': true,
  });
});

test('a bench that did not run, or failed without a result, is "not measured", never met', () => {
  const readings = readTargets({ launcher: { result: launcher }, e2e: {} });
  assert.ok(readings.filter((r) => !r.from.startsWith('launcher.')).every((r) => r.met === null && r.value === null));
  assert.match(formatTargets(readings), /^not measured {2}e2e: \?wait=true of true p50 ≤ 6 ms \(steady state\): — \(e2e\.wait\.p50_ms\)$/m);
});

test('throughput with any error is not met, whatever its rate', () => {
  const met = byTarget(readTargets({ e2e: { result: { ...e2e, throughput: { jobs_per_s: 400, errors: 1 } } } }));
  assert.equal(met['e2e.throughput.jobs_per_s'], false);
});
