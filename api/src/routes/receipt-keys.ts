import { createPublicKey, type KeyObject } from 'node:crypto';
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { receiptKeyId } from '../../../core/src/receipts/public-keys.ts';
import type { AppDeps, AppEnv } from '../deps.ts';
import { errors, json } from '../openapi.ts';

const ReceiptKey = z.object({
  keyId: z.string().describe('The `keyId` of the receipts it verifies'),
  algorithm: z.literal('ed25519'),
  publicKeyPem: z.string().describe('SPKI, PEM'),
});

export const receiptKeysRoute = createRoute({
  method: 'get', path: '/v1/receipt-keys', summary: 'Public keys that verify job receipts', tags: ['jobs'],
  responses: { 200: json(z.object({ items: z.array(ReceiptKey) }), 'The receipt keys: the current one and those retired (none: receipts are off)'), 401: errors[401], 429: errors[429] },
});

/**
 * GET /v1/receipt-keys — the keys that verify a job's `receipt`: those of SBX_RECEIPT_PUBLIC_KEYS_FILE
 * (the current key and retired ones) and the public half of SBX_RECEIPT_KEY_FILE when the API has it,
 * each once.
 */
export function registerReceiptKeys(app: OpenAPIHono<AppEnv>, deps: AppDeps): void {
  const { SBX_RECEIPT_KEY_FILE: own, SBX_RECEIPT_PUBLIC_KEYS_FILE: listed = [] } = deps.config.env;
  const byId = new Map<string, KeyObject>();
  for (const key of [...(own ? [createPublicKey(own)] : []), ...listed]) byId.set(receiptKeyId(key), key);
  const items = [...byId].map(([keyId, key]) => ({ keyId, algorithm: 'ed25519' as const, publicKeyPem: key.export({ type: 'spki', format: 'pem' }).toString() }));
  app.openapi(receiptKeysRoute, (c) => c.json({ items }, 200));
}
