/**
 * One webhook POST: the body signed (core/src/webhooks/webhook-signature.ts), sent through the
 * egress-guarded dispatcher (core/src/egress: a private address the allow-list does not name is
 * refused before any connection), bounded by a deadline, no redirects followed, at most 64 KiB of
 * the answer read. The outcome says whether another attempt may help: timeouts, connection
 * failures and 5xx (and 429) may; 4xx, 3xx and egress refusals never will.
 */
import { request, type Dispatcher } from 'undici';
import { EVENT_HEADER, FINISHED_EVENT, SIGNATURE_HEADER, WEBHOOK_ID_HEADER, signatureHeader } from '../../../core/src/webhooks/webhook-signature.ts';

export interface PostOutcome {
  status: number | null;
  error: { code: string; message: string } | null;
  ms: number;
  delivered: boolean;
  retryable: boolean;
}

export interface WebhookPost {
  url: string;
  body: string;
  secret: string;
  /** Stable across attempts (the job id): receivers de-duplicate on it. */
  webhookId: string;
  dispatcher: Dispatcher;
  timeoutMs: number;
}

const ANSWER_READ_LIMIT = 64 * 1024;

export async function postWebhook(p: WebhookPost): Promise<PostOutcome> {
  const started = performance.now();
  const ms = () => Math.round(performance.now() - started);
  try {
    const res = await request(p.url, {
      method: 'POST',
      dispatcher: p.dispatcher,
      body: p.body,
      headers: {
        'content-type': 'application/json',
        'user-agent': 'sbx-webhooks/1',
        [SIGNATURE_HEADER]: signatureHeader(p.secret, p.body),
        [WEBHOOK_ID_HEADER]: p.webhookId,
        [EVENT_HEADER]: FINISHED_EVENT,
      },
      signal: AbortSignal.timeout(p.timeoutMs),
      headersTimeout: p.timeoutMs,
      bodyTimeout: p.timeoutMs,
    });
    await res.body.dump({ limit: ANSWER_READ_LIMIT }).catch(() => {});
    const status = res.statusCode;
    if (status >= 200 && status < 300) return { status, error: null, ms: ms(), delivered: true, retryable: false };
    const retryable = status >= 500 || status === 429 || status === 408;
    return { status, error: { code: 'http_error', message: `the receiver answered ${status}${retryable ? '' : '; not retried'}` }, ms: ms(), delivered: false, retryable };
  } catch (e) {
    return { status: null, error: describe(e), ms: ms(), delivered: false, retryable: isRetryable(e) };
  }
}

function codeOf(e: unknown): string | undefined {
  const direct = (e as { code?: unknown } | null)?.code;
  if (typeof direct === 'string') return direct;
  const cause = (e as { cause?: { code?: unknown } } | null)?.cause?.code;
  return typeof cause === 'string' ? cause : undefined;
}

function describe(e: unknown): { code: string; message: string } {
  const code = codeOf(e);
  const name = (e as { name?: string } | null)?.name;
  if (code === 'egress_refused') return { code: 'egress_refused', message: (e as Error).message };
  if (name === 'TimeoutError' || name === 'AbortError' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') {
    return { code: 'timeout', message: 'the receiver did not answer in time' };
  }
  if (code?.startsWith('ERR_TLS') || code?.includes('CERT') || code === 'DEPTH_ZERO_SELF_SIGNED_CERT') return { code: 'tls_failed', message: `TLS failed (${code})` };
  return { code: 'connection_failed', message: `could not reach the receiver (${code ?? name ?? 'error'})` };
}

function isRetryable(e: unknown): boolean {
  return describe(e).code !== 'egress_refused';
}
