/**
 * Webhook signatures, the way Stripe does it: HMAC-SHA256 with the tenant's secret over
 * `<timestamp>.<body>` (timestamp = Unix seconds when the attempt was made), sent as
 *
 *   sbx-signature: t=1733130000,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd
 *
 * A receiver recomputes v1 over the raw body it received, compares in constant time, and refuses a
 * timestamp too far from its clock (replays). Each attempt is signed afresh (new t).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'sbx-signature';
/** Same value on every attempt for one job: receivers de-duplicate on it. */
export const WEBHOOK_ID_HEADER = 'sbx-webhook-id';
export const EVENT_HEADER = 'sbx-event';
export const FINISHED_EVENT = 'job.finished';

export function signatureOf(secret: string, timestamp: number, body: string): string {
  return createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
}

/** The header value for a body sent at `timestamp` (Unix seconds). */
export function signatureHeader(secret: string, body: string, timestamp = Math.floor(Date.now() / 1000)): string {
  return `t=${timestamp},v1=${signatureOf(secret, timestamp, body)}`;
}

/**
 * A receiver's check: the header has a timestamp within `toleranceSeconds` of `now` and a v1
 * signature of `t.body` with `secret`. Returns why not, or null when it verifies.
 */
export function verifySignature(secret: string, header: string | undefined, body: string, opts: { toleranceSeconds?: number; now?: number } = {}): string | null {
  if (!header) return 'no signature header';
  const parts = header.split(',').map((p) => p.trim().split('=', 2) as [string, string?]);
  const t = Number(parts.find(([k]) => k === 't')?.[1]);
  if (!Number.isSafeInteger(t)) return 'no timestamp';
  const now = opts.now ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - t) > (opts.toleranceSeconds ?? 300)) return 'timestamp outside the tolerance';
  const expected = Buffer.from(signatureOf(secret, t, body), 'hex');
  const ok = parts.some(([k, v]) => k === 'v1' && v !== undefined && /^[0-9a-f]{64}$/.test(v) && timingSafeEqual(Buffer.from(v, 'hex'), expected));
  return ok ? null : 'no v1 signature matches';
}
