// Load: constant arrival rate of `true` jobs submitted with ?wait=true. The thresholds are the
// verdict: k6 exits non-zero when one fails.
import { check } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import { checkReady, submitAndWait } from './lib/jobs.js';

const jobErrors = new Counter('sbx_job_errors');
const jobLatency = new Trend('sbx_job_latency', true);

export const options = {
  summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(90)', 'p(99)'],
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
    sbx_job_latency: ['med<50', 'p(99)<500'],
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
  const m = data.metrics;
  const lat = m.sbx_job_latency ? m.sbx_job_latency.values : {};
  const failed = Object.entries(m).flatMap(([name, metric]) => Object.entries(metric.thresholds || {}).filter(([, t]) => !t.ok).map(([expr]) => `${name} ${expr}`));
  const line = `sbx load: ${m.iterations ? m.iterations.values.count : 0} jobs, ${m.iterations ? m.iterations.values.rate.toFixed(1) : 0}/s, ` +
    `latency p50 ${(lat.med || 0).toFixed(1)} ms p99 ${(lat['p(99)'] || 0).toFixed(1)} ms, errors ${m.sbx_job_errors ? m.sbx_job_errors.values.count : 0}; ` +
    `thresholds ${failed.length ? `FAILED: ${failed.join('; ')}` : 'passed'}\n`;
  return { stdout: line, [__ENV.SUMMARY || 'loadtest/results/summary.json']: JSON.stringify(data, null, 2) };
}
