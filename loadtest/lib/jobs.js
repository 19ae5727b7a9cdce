import http from 'k6/http';
import { BASE_URL, IMAGE, headers } from './config.js';

export function submitAndWait(command) {
  return http.post(`${BASE_URL}/v1/jobs?wait=true`, JSON.stringify({ image: IMAGE, command }), { headers: headers(), tags: { name: 'POST /v1/jobs?wait=true' } });
}

export function checkReady() {
  const res = http.get(`${BASE_URL}/readyz`);
  if (res.status !== 200) throw new Error(`sbx API at ${BASE_URL} is not ready (${res.status}); start it with npm run up`);
}
