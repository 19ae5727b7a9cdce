import http from 'k6/http';
import { BASE_URL, IMAGE, headers } from './config.js';

/** POST /v1/jobs?wait=true: the answer is the finished job document with its output (200). */
export function submitAndWait(command, extra = {}, tags = {}) {
  return http.post(`${BASE_URL}/v1/jobs?wait=true`, JSON.stringify({ image: IMAGE, command, ...extra }), {
    headers: headers(),
    timeout: '70s', // the server's wait cap is 60 s
    tags: { name: 'POST /v1/jobs?wait=true', ...tags },
  });
}

/** POST /v1/jobs: 202 with the queued job document. */
export function submit(command, extra = {}, tags = {}) {
  return http.post(`${BASE_URL}/v1/jobs`, JSON.stringify({ image: IMAGE, command, ...extra }), {
    headers: headers(),
    tags: { name: 'POST /v1/jobs', ...tags },
  });
}

/** A GET of the job's SSE stream; the server closes it after the `exit` event, which ends the request. */
export function eventsRequest(id, tags = {}) {
  return ['GET', `${BASE_URL}/v1/jobs/${id}/events`, null, { headers: headers(), timeout: '60s', tags: { name: 'GET /v1/jobs/{id}/events', ...tags } }];
}

export function checkReady() {
  const res = http.get(`${BASE_URL}/readyz`);
  if (res.status !== 200) throw new Error(`sbx API at ${BASE_URL} is not ready (${res.status}); start it with npm run up, or use --own-stack`);
}
