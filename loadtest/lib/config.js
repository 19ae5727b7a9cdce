// Shared k6 settings: every target comes from the environment, nothing is hard-coded.
export const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8080';
export const IMAGE = __ENV.SBX_IMAGE || '127.0.0.1:5000/demo/busybox:latest';
export const API_KEY = __ENV.SBX_API_KEY || '';

export function headers() {
  const h = { 'Content-Type': 'application/json' };
  if (API_KEY) h.Authorization = `Bearer ${API_KEY}`;
  return h;
}
