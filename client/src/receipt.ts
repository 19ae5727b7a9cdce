/**
 * Checking a job's signed receipt (the server's SBX_RECEIPT_KEY_FILE): its Ed25519 signature over
 * `payload` with a public key the checker trusts. Keys from `client.receiptKeys()` show the receipt
 * is unchanged since the server signed it; to trust the server's word itself, hold its public key
 * from elsewhere (`sbx verify --key receipt.pub`).
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import type { ReceiptPayload } from '../../core/src/receipts/job-receipt.ts';
import type { Job } from './types.ts';

export type { ReceiptPayload };

/** The payload format (`v`) this client reads. */
const RECEIPT_FORMAT = 1;

export interface ReceiptKey {
  keyId: string;
  algorithm: 'ed25519';
  publicKeyPem: string;
}

export type ReceiptCheck = { ok: true; keyId: string; payload: ReceiptPayload } | { ok: false; reason: string };

/** A key to check with: as the server lists them, or a KeyObject (without keyId: tried whatever key the receipt names). */
export type TrustedKey = ReceiptKey | { keyId?: string; key: KeyObject };

/**
 * Whether `job.receipt` is signed by one of `keys` and says it is of this job: the payload's job id
 * must be the document's, and its format (`v`) the one this client reads.
 */
export function checkReceipt(job: Pick<Job, 'id' | 'receipt'>, keys: readonly TrustedKey[]): ReceiptCheck {
  const r = job.receipt;
  if (!r) return { ok: false, reason: 'the job has no receipt (the server signs none, or its command never ran)' };
  if (r.algorithm !== 'ed25519') return { ok: false, reason: `unknown algorithm ${JSON.stringify(r.algorithm)}` };
  const match = keys.find((k) => k.keyId === r.keyId || k.keyId === undefined);
  if (!match) return { ok: false, reason: `signed by key ${r.keyId}, which is not among the keys given` };
  const key = 'key' in match ? match.key : createPublicKey(match.publicKeyPem);
  if (!verify(null, Buffer.from(r.payload, 'utf8'), key, Buffer.from(r.signature, 'base64'))) return { ok: false, reason: 'the signature does not match the payload: changed after signing, or signed with another key' };
  const payload = JSON.parse(r.payload) as ReceiptPayload;
  // The payload's format: fields added to it keep v 1 (ignored here); another v may give its fields
  // other meanings, so a newer worker's receipt is not read, and reported verified, as this one.
  if (payload.v !== RECEIPT_FORMAT) return { ok: false, reason: `the receipt's payload is format v ${JSON.stringify(payload.v)}; this client reads v ${RECEIPT_FORMAT}: upgrade it to check this receipt` };
  if (payload.jobId !== job.id) return { ok: false, reason: `the receipt is job ${payload.jobId}'s, not ${job.id}'s` };
  return { ok: true, keyId: r.keyId, payload };
}
