// Load: constant arrival rate of `true` jobs submitted with ?wait=true. The thresholds are the
// verdict: k6 exits non-zero when one fails.
import { check } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import { checkReady, submitAndWait } from './lib/jobs.js';

const jobErrors = new Counter('sbx_job_errors');
const jobLatency = new Trend('sbx_job_latency', true);

export const options = {
  scenarios: {
    jobs: {
      executor: 'constant-arrival-rate',
      rate: Number(__ENV.RATE || 100),
      timeUnit: '1s',
      duration: __ENV.DURATION || '30s',
      preAllocatedVUs: Number(__ENV.VUS || 32),
      maxVUs: Number(__ENV.MAX_VUS || 128),
    },
  },
  thresholds: {
    sbx_job_errors: ['count==0'],
    sbx_job_latency: ['p(50)<50', 'p(99)<500'],
    http_req_failed: ['rate==0'],
  },
};

export function setup() {
  checkReady();
}

export default function () {
  const res = submitAndWait(['true']);
  jobLatency.add(res.timings.duration);
  const ok = check(res, { 'answered 200': (r) => r.status === 200, succeeded: (r) => r.json('status') === 'succeeded' });
  if (!ok) jobErrors.add(1);
}

export function handleSummary(data) {
  return { [__ENV.SUMMARY || 'loadtest/results/summary.json']: JSON.stringify(data, null, 2) };
}
