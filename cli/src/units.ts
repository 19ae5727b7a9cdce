/**
 * Docker's value syntaxes: memory `256m` / `1g` / `512k` / `1048576` (binary units, like
 * `docker run -m`), durations `30s` / `1m30s` / `500ms` / `2h` (Go's time.ParseDuration; a bare
 * number is seconds), CPUs `1.5`, and `--since` (a duration ago, or an RFC 3339 time / Unix seconds).
 */
import os from 'node:os';
import { STOP_SIGNALS, type StopSignal } from '../../core/src/launch-bounds.ts';

const MEMORY_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

export function parseMemory(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([bkmgt]?)(?:i?b)?$/i.exec(text.trim());
  if (!m) throw new Error(`invalid size "${text}": use a number of bytes with an optional unit b, k, m, g (like 256m)`);
  return Math.round(Number(m[1]) * MEMORY_UNITS[m[2]!.toLowerCase()]!);
}

const DURATION_UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds. */
export function parseDuration(text: string): number {
  const t = text.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Math.round(Number(t) * 1000);
  const part = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  for (let m; (m = part.exec(t)); ) {
    total += Number(m[1]) * DURATION_UNITS[m[2]!]!;
    matched = part.lastIndex;
  }
  if (matched !== t.length || t.length === 0) throw new Error(`invalid duration "${text}": use a number with a unit ms, s, m or h (like 30s or 1m30s)`);
  return Math.round(total);
}

export function parseCpus(text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`invalid CPU count "${text}": use a positive number like 1.5`);
  return n;
}

/** `--since`: a duration before now (`10m`), an RFC 3339 date/time, or Unix seconds; as epoch milliseconds. */
export function parseSince(text: string, now = Date.now(), flag = '--since'): number {
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  if (/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(text)) return now - parseDuration(text);
  const at = Date.parse(text);
  if (Number.isNaN(at)) throw new Error(`invalid ${flag} "${text}": use a duration like 10m, an RFC 3339 time or Unix seconds`);
  return at;
}

export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)}${units[i]}`;
}

/** Docker's "About a minute ago" style, shortened: `3 seconds ago`, `5 minutes ago`, `2 hours ago`. */
export function timeAgo(iso: string | null, now = Date.now()): string {
  if (!iso) return '';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} second${s === 1 ? '' : 's'} ago`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} minute${m === 1 ? '' : 's'} ago`;
  const h = Math.round(m / 60);
  if (h < 48) return `${h} hour${h === 1 ? '' : 's'} ago`;
  return `${Math.round(h / 24)} days ago`;
}

export function formatMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  return `${Math.floor(ms / 60_000)}m${Math.round((ms % 60_000) / 1000)}s`;
}

/** Docker's --stop-signal: a name with or without SIG (TERM, SIGINT), or its number. */
export function parseStopSignal(text: string): StopSignal {
  const upper = text.trim().toUpperCase();
  const name = /^\d+$/.test(upper)
    ? Object.entries(os.constants.signals).find(([, n]) => n === Number(upper))?.[0]
    : upper.startsWith('SIG') ? upper : `SIG${upper}`;
  const known = STOP_SIGNALS.find((s) => s === name);
  if (!known) throw new Error(`use one of ${STOP_SIGNALS.join(', ')}`);
  return known;
}
