// (c) SSE readers: submit a job that prints LINES lines over ~LINES×0.1 s, then READERS clients read
// its /v1/jobs/{id}/events at once (k6 has no SSE client: each is a plain GET that the server ends after
// the `exit` event, since the job is over by then), and each must have received the whole stream: every
// stdout line in order, ids increasing, `exit` last with `succeeded`. Jobs at a constant arrival rate.
//   env: RATE (10) DURATION (30s) READERS (2) LINES (5) VUS (16) MAX_VUS (256)
import http from 'k6/http';
import { check } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import { SUMMARY_TREND_STATS, num } from '../lib/config.js';
import { checkReady, eventsRequest, submit } from '../lib/jobs.js';
import { readJobStream } from '../lib/sse.js';
import { summarize } from '../lib/summary.js';

const READERS = num('READERS', 2);
const LINES = num('LINES', 5);
const streamTime = new Trend('sbx_sse_stream', true);
const submitTime = new Trend('sbx_submit_latency', true);
const events = new Counter('sbx_sse_events');

export const options = {
  summaryTrendStats: SUMMARY_TREND_STATS,
  scenarios: {
    sse: {
      executor: 'constant-arrival-rate',
      rate: num('RATE', 10),
      timeUnit: '1s',
      duration: __ENV.DURATION || '30s',
      preAllocatedVUs: num('VUS', 16),
      maxVUs: num('MAX_VUS', 256),
    },
  },
  thresholds: {
    http_req_failed: ['rate==0'],
    checks: ['rate==1'],
    dropped_iterations: ['count==0'],
    // A submission without waiting is one Redis script and a queue add: 100 ms at p99 under load.
    sbx_submit_latency: [`p(99)<${num('P99_SUBMIT_MS', 100)}`],
    // From the GET to the stream's end: the job's own run (LINES × 0.1 s of sleeps) plus 500 ms for
    // queueing, start and the last event's fan-out to every reader on 2 shared cores.
    sbx_sse_stream: [`p(99)<${num('P99_STREAM_MS', LINES * 100 + 500)}`],
  },
};

export function setup() {
  checkReady();
}

const expected = Array.from({ length: LINES }, (_, i) => `line ${i + 1}\n`).join('');

export default function () {
  const res = submit(['sh', '-c', `i=1; while [ $i -le ${LINES} ]; do echo line $i; sleep 0.1; i=$((i+1)); done`]);
  submitTime.add(res.timings.duration);
  if (!check(res, { 'submitted 202': (r) => r.status === 202 })) return;
  const id = res.json('id');
  const streams = http.batch(Array.from({ length: READERS }, () => eventsRequest(id)));
  for (const s of streams) {
    streamTime.add(s.timings.duration);
    const got = readJobStream(s.body);
    events.add(got.events);
    check(s, { 'stream 200 text/event-stream': (r) => r.status === 200 && /^text\/event-stream/.test(r.headers['Content-Type'] || '') });
    check(got, {
      'stream whole (ids increasing, exit last)': (g) => g.problems.length === 0,
      'every stdout line, in order': (g) => g.stdout === expected,
      'exit says succeeded': (g) => g.status === 'succeeded',
    });
    if (got.problems.length || got.stdout !== expected) console.warn(`job ${id}: ${got.problems.join('; ')} stdout ${JSON.stringify(got.stdout.slice(0, 200))}`);
  }
}

export const handleSummary = summarize('sse', ['sbx_submit_latency', 'sbx_sse_stream']);
