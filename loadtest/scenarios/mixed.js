// (b) Mixed sizes at once, each kind its own constant arrival rate, all ?wait=true:
//   short   `true`                                                        (RATE_SHORT, 20/s)
//   output  writes 1 MiB to stdout; the answer must hold all of it          (RATE_OUTPUT, 4/s)
//   sleep   sleeps 1 or 2 s (alternating), holding a run slot               (RATE_SLEEP, 2/s)
//   oom     allocates past a 16 MiB memory limit; must end `oom`           (RATE_OOM, 2/s)
// Sleeping jobs hold slots: 2/s × 1.5 s ≈ 3 of a 2-core worker's 8; the rest stay free for the others.
// Latency bounds per kind, as the job's own run time plus what the service may add under this load
// (justified beside each); the thresholds are the verdict.
//   env: DURATION (60s) RATE_* above, VUS (32) MAX_VUS (256)
import { check } from 'k6';
import exec from 'k6/execution';
import { Trend } from 'k6/metrics';
import { SUMMARY_TREND_STATS, num } from '../lib/config.js';
import { checkReady, submitAndWait } from '../lib/jobs.js';
import { summarize } from '../lib/summary.js';

const MiB = 1024 * 1024;
const latency = new Trend('sbx_job_latency', true);
const duration = __ENV.DURATION || '60s';
const kind = (name, rate) => ({
  executor: 'constant-arrival-rate',
  exec: name,
  rate,
  timeUnit: '1s',
  duration,
  preAllocatedVUs: Math.max(2, Math.ceil(rate * 2)),
  maxVUs: num('MAX_VUS', 256),
  tags: { kind: name },
});

export const options = {
  summaryTrendStats: SUMMARY_TREND_STATS,
  scenarios: {
    short: kind('short', num('RATE_SHORT', 20)),
    output: kind('output', num('RATE_OUTPUT', 4)),
    sleep: kind('sleep', num('RATE_SLEEP', 2)),
    oom: kind('oom', num('RATE_OOM', 2)),
  },
  thresholds: {
    http_req_failed: ['rate==0'],
    checks: ['rate==1'],
    dropped_iterations: ['count==0'],
    // `true`: as in the trivial scenario, but sharing the worker with 1 MiB writers and OOM kills.
    'sbx_job_latency{kind:short}': [`p(99)<${num('P99_SHORT_MS', 250)}`],
    // 1 MiB through the job's pipe, the worker, a Redis stream and the JSON answer: a few ms of copying
    // on a quiet machine; 500 ms bounds it with room for the 2 shared cores.
    'sbx_job_latency{kind:output}': [`p(99)<${num('P99_OUTPUT_MS', 500)}`],
    // The sleep itself (≤ 2 s) plus the same 250 ms as a trivial job.
    'sbx_job_latency{kind:sleep}': [`p(99)<${num('P99_SLEEP_MS', 2250)}`],
    // Filling 16 MiB and the kernel's OOM kill take tens of ms; 500 ms as for output.
    'sbx_job_latency{kind:oom}': [`p(99)<${num('P99_OOM_MS', 500)}`],
  },
};

export function setup() {
  checkReady();
}

function run(command, extra, expect) {
  const res = submitAndWait(command, extra);
  latency.add(res.timings.duration);
  const doc = res.status === 200 ? res.json() : null;
  check(res, { 'answered 200': (r) => r.status === 200 });
  check(doc, expect);
  return doc;
}

export function short() {
  run(['true'], {}, { 'short: succeeded': (d) => d !== null && d.status === 'succeeded' });
}

export function output() {
  // 1 MiB of 'x' (busybox head/tr); the output limit is raised to 2 MiB so nothing is cut.
  run(['sh', '-c', `head -c ${MiB} /dev/zero | tr '\\0' x`], { limits: { outputBytes: 2 * MiB } }, {
    'output: succeeded': (d) => d !== null && d.status === 'succeeded',
    'output: all 1 MiB arrived, not truncated': (d) => d !== null && d.outputTruncated === false && d.output.stdout.length === MiB && /^x+$/.test(d.output.stdout),
  });
}

export function sleep() {
  const seconds = 1 + (exec.scenario.iterationInTest % 2);
  run(['sleep', String(seconds)], {}, {
    'sleep: succeeded': (d) => d !== null && d.status === 'succeeded',
    'sleep: ran as long as asked': (d) => d !== null && d.usage.wallMs >= seconds * 1000,
  });
}

export function oom() {
  run(['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=64M', 'count=1'], { limits: { memoryBytes: 16 * MiB } }, {
    'oom: ended oom': (d) => d !== null && d.status === 'oom' && d.usage.oomKilled === true,
  });
}

export const handleSummary = summarize('mixed', ['sbx_job_latency{kind:short}', 'sbx_job_latency{kind:output}', 'sbx_job_latency{kind:sleep}', 'sbx_job_latency{kind:oom}']);
