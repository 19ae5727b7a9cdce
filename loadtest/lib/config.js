// Shared k6 settings: every target comes from the environment, nothing is hard-coded.
export const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8080';
export const IMAGE = __ENV.SBX_IMAGE || '127.0.0.1:5000/demo/busybox:latest';
export const API_KEY = __ENV.SBX_API_KEY || '';

export function headers() {
  const h = { 'Content-Type': 'application/json' };
  if (API_KEY) h.Authorization = `Bearer ${API_KEY}`;
  return h;
}

/** A number from the environment, or `fallback`. */
export function num(name, fallback) {
  const v = __ENV[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`${name}=${v} is not a number`);
  return n;
}

/** The summary statistics every scenario reports (p99 is what the thresholds judge). */
export const SUMMARY_TREND_STATS = ['count', 'avg', 'min', 'med', 'max', 'p(90)', 'p(99)'];
