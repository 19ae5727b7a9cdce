// (d) Soak: a constant moderate load for DURATION (10 min): trivial ?wait=true jobs at RATE and SSE
// readers (a job printing a few lines, read to its end) at SSE_RATE, each the same check as in its own
// scenario. loadtest/run.ts samples the API's and worker's RSS and Redis meanwhile
// (loadtest/soak-monitor.ts) and judges them; the thresholds here judge errors and latency.
//   env: DURATION (10m) RATE (20) SSE_RATE (2) MAX_VUS (256)
import http from 'k6/http';
import { check } from 'k6';
import { Trend } from 'k6/metrics';
import { SUMMARY_TREND_STATS, num } from '../lib/config.js';
import { checkReady, eventsRequest, submit, submitAndWait } from '../lib/jobs.js';
import { readJobStream } from '../lib/sse.js';
import { summarize } from '../lib/summary.js';

const latency = new Trend('sbx_job_latency', true);
const streamTime = new Trend('sbx_sse_stream', true);
const duration = __ENV.DURATION || '10m';
const rate = (exec, r) => ({ executor: 'constant-arrival-rate', exec, rate: r, timeUnit: '1s', duration, preAllocatedVUs: Math.max(4, r), maxVUs: num('MAX_VUS', 256) });

export const options = {
  summaryTrendStats: SUMMARY_TREND_STATS,
  scenarios: {
    trivial: rate('trivial', num('RATE', 20)),
    sse: rate('sse', num('SSE_RATE', 2)),
  },
  thresholds: {
    http_req_failed: ['rate==0'],
    checks: ['rate==1'],
    dropped_iterations: ['count==0'],
    // The same bounds as the trivial and SSE scenarios (see there), over 10 minutes at a lower rate.
    sbx_job_latency: [`p(99)<${num('P99_MS', 250)}`],
    sbx_sse_stream: [`p(99)<${num('P99_STREAM_MS', 800)}`],
  },
};

export function setup() {
  checkReady();
}

export function trivial() {
  const res = submitAndWait(['true']);
  latency.add(res.timings.duration);
  check(res, { 'answered 200': (r) => r.status === 200, succeeded: (r) => r.status === 200 && r.json('status') === 'succeeded' });
}

export function sse() {
  const res = submit(['sh', '-c', 'echo one; sleep 0.1; echo two; sleep 0.1; echo three']);
  if (!check(res, { 'submitted 202': (r) => r.status === 202 })) return;
  const s = http.request(...eventsRequest(res.json('id')));
  streamTime.add(s.timings.duration);
  const got = readJobStream(s.body);
  check(got, { 'sse: whole stream, every line, succeeded': (g) => g.problems.length === 0 && g.stdout === 'one\ntwo\nthree\n' && g.status === 'succeeded' });
}

export const handleSummary = summarize('soak', ['sbx_job_latency', 'sbx_sse_stream']);
