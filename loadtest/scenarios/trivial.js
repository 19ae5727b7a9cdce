// (a) Trivial jobs at a constant arrival rate: `true` submitted with ?wait=true, RATE per second for
// DURATION, whatever the answers' latency (constant-arrival-rate: a slow service does not slow the
// offered load; VUs are added up to MAX_VUS, beyond that iterations are dropped and that fails too).
// The thresholds are the verdict: k6 exits non-zero when one fails.
//   env: RATE (100) DURATION (30s) VUS (32) MAX_VUS (256) P50_MS (50) P99_MS (250)
import { check } from 'k6';
import { Trend } from 'k6/metrics';
import { SUMMARY_TREND_STATS, num } from '../lib/config.js';
import { checkReady, submitAndWait } from '../lib/jobs.js';
import { summarize } from '../lib/summary.js';

const latency = new Trend('sbx_job_latency', true);

export const options = {
  summaryTrendStats: SUMMARY_TREND_STATS,
  scenarios: {
    trivial: {
      executor: 'constant-arrival-rate',
      rate: num('RATE', 100),
      timeUnit: '1s',
      duration: __ENV.DURATION || '30s',
      preAllocatedVUs: num('VUS', 32),
      maxVUs: num('MAX_VUS', 256),
    },
  },
  thresholds: {
    http_req_failed: ['rate==0'],
    checks: ['rate==1'],
    dropped_iterations: ['count==0'],
    // ?wait=true of `true` is one round trip through API, Redis, a worker and the launcher: issue 13's
    // sequential target is p50 6 / p99 15 ms on a quiet machine; under a constant 100 jobs/s on 2 shared
    // cores queueing adds to that. 250 ms at p99 is well past what a user calls "instant"-ish for a
    // trivial job and far below the 1 s where a job service feels stuck; p50 50 ms catches a regression
    // of the common path by 3x or more.
    sbx_job_latency: [`med<${num('P50_MS', 50)}`, `p(99)<${num('P99_MS', 250)}`],
  },
};

export function setup() {
  checkReady();
}

export default function () {
  const res = submitAndWait(['true']);
  latency.add(res.timings.duration);
  check(res, {
    'answered 200': (r) => r.status === 200,
    succeeded: (r) => r.status === 200 && r.json('status') === 'succeeded',
  });
}

export const handleSummary = summarize('trivial', ['sbx_job_latency']);
