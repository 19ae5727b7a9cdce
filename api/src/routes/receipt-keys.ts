import { createPublicKey } from 'node:crypto';
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { receiptKeyId } from '../../../core/src/receipts/job-receipt.ts';
import type { AppDeps, AppEnv } from '../deps.ts';
import { errors, json } from '../openapi.ts';

const ReceiptKey = z.object({
  keyId: z.string().describe('The `keyId` of the receipts it verifies'),
  algorithm: z.literal('ed25519'),
  publicKeyPem: z.string().describe('SPKI, PEM'),
});

export const receiptKeysRoute = createRoute({
  method: 'get', path: '/v1/receipt-keys', summary: 'Public keys that verify job receipts', tags: ['jobs'],
  responses: { 200: json(z.object({ items: z.array(ReceiptKey) }), 'The server\'s receipt key (none: receipts are off)'), 401: errors[401], 429: errors[429] },
});

/** GET /v1/receipt-keys — the public half of SBX_RECEIPT_KEY_FILE, which verifies a job's `receipt`. */
export function registerReceiptKeys(app: OpenAPIHono<AppEnv>, deps: AppDeps): void {
  const key = deps.config.env.SBX_RECEIPT_KEY_FILE;
  const items = key ? [{ keyId: receiptKeyId(key), algorithm: 'ed25519' as const, publicKeyPem: createPublicKey(key).export({ type: 'spki', format: 'pem' }).toString() }] : [];
  app.openapi(receiptKeysRoute, (c) => c.json({ items }, 200));
}
