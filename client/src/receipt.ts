/**
 * Checking a job's signed receipt (the server's SBX_RECEIPT_KEY_FILE): its Ed25519 signature over
 * `payload` with a public key the checker trusts. Keys from `client.receiptKeys()` show the receipt
 * is unchanged since the server signed it; to trust the server's word itself, hold its public key
 * from elsewhere (`sbx verify --key receipt.pub`).
 *
 * What is verified is the document as a whole, as far as the payload covers it: a document handed on
 * whose own fields (status, exitCode, command, limits, usage, outputFiles, output, ...) say something
 * else than its signed payload is not verified, however good the signature: whoever reads
 * `job.exitCode` reads what was signed. Fields the payload does not cover (labels, error, callback,
 * placement, most timings, ...) cannot be checked: a verified check lists those the document carries
 * (`unsigned`), so that no one takes them as signed.
 */
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import type { ReceiptPayload } from '../../core/src/receipts/job-receipt.ts';
import { receiptKeyId } from '../../core/src/receipts/public-keys.ts';
import type { Job } from './types.ts';

export type { ReceiptPayload };

/** The payload format (`v`) this client reads. */
const RECEIPT_FORMAT = 1;

export interface ReceiptKey {
  keyId: string;
  algorithm: 'ed25519';
  publicKeyPem: string;
}

/**
 * Why a receipt was not verified, stable (branch on it, never on `reason`): `no_receipt`,
 * `malformed` (not a receipt's shape: fields missing or of the wrong type, a payload that is not a
 * JSON object, a signature that is not canonical base64), `unknown_algorithm`, `unknown_key` (none of
 * the keys given is the one it names), `bad_key` (a key given is not an Ed25519 public key),
 * `bad_signature`, `unknown_format` (a payload `v` this client does not read), `other_job` (the
 * payload is another job's), `document_mismatch` (the document's own fields disagree with its payload).
 */
export type ReceiptFailure = 'no_receipt' | 'malformed' | 'unknown_algorithm' | 'unknown_key' | 'bad_key' | 'bad_signature' | 'unknown_format' | 'other_job' | 'document_mismatch';

/**
 * `unsigned`: the document's fields (dotted paths, in document order) that the signature does not
 * cover, so nothing vouches for them: `labels`, `error`, `timings.createdAt`, ... Empty: all it holds is signed.
 */
export type ReceiptCheck = { ok: true; keyId: string; payload: ReceiptPayload; unsigned: string[] } | { ok: false; code: ReceiptFailure; reason: string };

/** A key to check with: as the server lists them, or a KeyObject (without keyId: tried whatever key the receipt names). */
export type TrustedKey = ReceiptKey | { keyId?: string; key: KeyObject };

/** Canonical base64 (RFC 4648, padded): what the worker writes. Buffer.from(s, 'base64') skips other characters, so many strings would decode to one signature. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

const fail = (code: ReceiptFailure, reason: string): ReceiptCheck => ({ ok: false, code, reason });

/**
 * Whether `job.receipt` is signed by one of `keys` and says it is of this job: the payload's job id
 * must be the document's, its format (`v`) the one this client reads, and the document's fields the
 * payload covers must be the payload's (`document_mismatch`). Never throws: a hostile document or
 * key list is a failure with its reason.
 */
export function checkReceipt(job: Pick<Job, 'id' | 'receipt'> & Partial<Job>, keys: readonly TrustedKey[]): ReceiptCheck {
  const r: unknown = job.receipt;
  if (r === undefined || r === null) return fail('no_receipt', 'the job has no receipt (the server signs none, or its command never ran)');
  if (typeof r !== 'object' || Array.isArray(r)) return fail('malformed', 'its receipt is not an object');
  const { payload: text, signature, algorithm, keyId } = r as Record<string, unknown>;
  if (algorithm !== 'ed25519') return fail('unknown_algorithm', `unknown algorithm ${JSON.stringify(algorithm) ?? 'undefined'}`);
  if (typeof text !== 'string' || typeof signature !== 'string' || typeof keyId !== 'string') return fail('malformed', 'its receipt\'s payload, signature and keyId must be strings');
  // The signed bytes are the payload's UTF-8: a lone surrogate would be signed as U+FFFD, so two
  // payloads (one with U+FFFD, one with a lone surrogate) would verify alike. The worker's JSON.stringify never writes one.
  if (/\p{Cs}/u.test(text)) return fail('malformed', 'its receipt\'s payload holds a lone UTF-16 surrogate, which is not what was signed');
  if (!BASE64.test(signature)) return fail('malformed', 'its receipt\'s signature is not canonical base64');
  const match = keys.find((k) => k.keyId === keyId || k.keyId === undefined);
  if (!match) return fail('unknown_key', `signed by key ${keyId}, which is not among the keys given`);
  let key: KeyObject;
  try {
    key = 'key' in match ? match.key : createPublicKey(match.publicKeyPem);
  } catch {
    return fail('bad_key', `the key given as ${keyId} is not a public key in PEM`);
  }
  if (key.asymmetricKeyType !== 'ed25519') return fail('bad_key', `the key given as ${keyId} is a ${key.asymmetricKeyType ?? 'symmetric'} key; receipts are signed with Ed25519`);
  // The id shown is the key's own, derived from it: never the receipt's unsigned `keyId` label, nor a server's.
  const actualId = receiptKeyId(key);
  if (!verify(null, Buffer.from(text, 'utf8'), key, Buffer.from(signature, 'base64'))) return fail('bad_signature', 'the signature does not match the payload: changed after signing, or signed with another key');
  let payload: ReceiptPayload;
  try {
    payload = JSON.parse(text) as ReceiptPayload;
  } catch {
    return fail('malformed', 'its receipt\'s payload is not JSON');
  }
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) return fail('malformed', 'its receipt\'s payload is not a JSON object');
  // The payload's format: fields added to it keep v 1 (ignored here); another v may give its fields
  // other meanings, so a newer worker's receipt is not read, and reported verified, as this one.
  if (payload.v !== RECEIPT_FORMAT) return fail('unknown_format', `the receipt's payload is format v ${JSON.stringify(payload.v)}; this client reads v ${RECEIPT_FORMAT}: upgrade it to check this receipt`);
  if (payload.jobId !== job.id) return fail('other_job', `the receipt is job ${JSON.stringify(payload.jobId)}'s, not ${job.id}'s`);
  const mismatch = documentMismatch(job, payload);
  if (mismatch) return fail('document_mismatch', mismatch);
  return { ok: true, keyId: actualId, payload, unsigned: unsignedFields(job, payload) };
}

/**
 * The fields of a job document its payload holds under the same name, compared as signed (key order
 * aside). Absent from the document: not compared (a document may be handed on without some of them).
 */
const COVERED = ['status', 'exitCode', 'signal', 'image', 'imageDigest', 'command', 'entrypoint', 'worker', 'outputTruncated', 'limits', 'usage', 'outputFiles'] as const;

/**
 * Fields signed since 2026-12-07 under the same name: compared when the payload holds them; in a
 * receipt from before, absent and so unsigned (a newer receipt always holds them: `labels` {} when
 * none, `error` null), so a forger cannot take them out of the signed text.
 */
const COVERED_SINCE_LABELS = ['labels', 'error'] as const;

/** Of the document's timings, the ones the payload signs (under the same name). */
const SIGNED_TIMINGS = ['startedAt', 'finishedAt'] as const;

/** Of the document's `egress` (network "egress" jobs), the proxy counts the payload's `network` signs. */
const SIGNED_EGRESS = ['connections', 'refused', 'bytesSent', 'bytesReceived'] as const;

/** Of the document's `interactive`, what the payload's `interactive` signs. */
const SIGNED_INTERACTIVE = ['openStdin', 'tty'] as const;

/**
 * Document fields the payload covers whole, under whatever name: those above, the job id, `network`
 * and `egressHosts` (the payload's `network`), `output` (the stdout and stderr digests) and the receipt itself.
 */
const SIGNED_WHOLE = new Set<string>([...COVERED, 'id', 'network', 'egressHosts', 'output', 'receipt']);

/** Document fields of which the payload covers some members only: those members. */
const SIGNED_IN_PART: Record<string, readonly string[]> = { timings: SIGNED_TIMINGS, egress: SIGNED_EGRESS, interactive: SIGNED_INTERACTIVE };

/** The document's fields the signature does not cover (dotted paths): anything not known to be signed, fields added later included. */
function unsignedFields(job: Partial<Job>, payload: ReceiptPayload): string[] {
  const unsigned: string[] = [];
  const signedToo = new Set<string>(COVERED_SINCE_LABELS.filter((f) => payload[f] !== undefined));
  for (const [field, value] of Object.entries(job)) {
    if (value === undefined || SIGNED_WHOLE.has(field) || signedToo.has(field)) continue;
    const members = SIGNED_IN_PART[field];
    if (members && typeof value === 'object' && value !== null && !Array.isArray(value)) {
      for (const [member, v] of Object.entries(value)) if (v !== undefined && !members.includes(member)) unsigned.push(`${field}.${member}`);
    } else {
      unsigned.push(field);
    }
  }
  return unsigned;
}

/** Why the document says something else than its signed payload, or null when it does not. */
function documentMismatch(job: Partial<Job>, payload: ReceiptPayload): string | null {
  const doc = job as Record<string, unknown>;
  const signed = payload as unknown as Record<string, unknown>;
  for (const field of COVERED) {
    const m = differs(field, doc[field], signed[field]);
    if (m) return m;
  }
  for (const field of COVERED_SINCE_LABELS) {
    const m = signed[field] === undefined ? null : differs(field, doc[field], signed[field]);
    if (m) return m;
  }
  const timings = job.timings as Record<string, unknown> | undefined;
  for (const t of SIGNED_TIMINGS) {
    const m = differs(`timings.${t}`, timings?.[t], signed[t]);
    if (m) return m;
  }
  return networkMismatch(job, payload) ?? interactiveMismatch(job, payload) ?? outputMismatch(job, payload);
}

/** The document's network, egressHosts and egress counts against the payload's `network` (absent: loopback only). */
function networkMismatch(job: Partial<Job>, payload: ReceiptPayload): string | null {
  const net = payload.network;
  if (net !== undefined && (typeof net !== 'object' || net === null)) return 'its signed receipt\'s network is not an object';
  // The document's "none" (or no network field, on jobs from before it) is a payload without `network`.
  if (job.network !== undefined && (job.network === 'egress') !== (net !== undefined)) return `the document's network (${JSON.stringify(job.network)}) is not its signed receipt's (${net ? '"egress"' : 'none: loopback only'})`;
  if (job.egressHosts !== undefined && !sameJson(job.egressHosts, net?.egressHosts)) return `the document's egressHosts (${JSON.stringify(job.egressHosts)}) are not its signed receipt's (${JSON.stringify(net?.egressHosts) ?? 'absent'})`;
  const egress = job.egress as Record<string, unknown> | undefined;
  if (egress === undefined) return null;
  if (net === undefined) return 'the document has egress counts, but its signed receipt is of a job with no network egress';
  for (const count of SIGNED_EGRESS) {
    const m = differs(`egress.${count}`, egress[count], net[count]);
    if (m) return m;
  }
  return null;
}

/** The document's `interactive` (openStdin, tty) against the payload's (absent: not an interactive job). */
function interactiveMismatch(job: Partial<Job>, payload: ReceiptPayload): string | null {
  const mode = job.interactive as Record<string, unknown> | undefined;
  if (mode === undefined) return null;
  if (typeof payload.interactive !== 'object' || payload.interactive === null) return 'the document says the job was interactive, but its signed receipt is of a job that was not';
  for (const member of SIGNED_INTERACTIVE) {
    const m = differs(`interactive.${member}`, mode[member], payload.interactive[member]);
    if (m) return m;
  }
  return null;
}

/** Why a document field (present) is not its signed value, or null. */
function differs(name: string, documented: unknown, signed: unknown): string | null {
  if (documented === undefined || sameJson(documented, signed)) return null;
  return `the document's ${name} (${JSON.stringify(documented)}) is not its signed receipt's (${JSON.stringify(signed) ?? 'absent'})`;
}

/** The document's output against the payload's digests. */
function outputMismatch(job: Partial<Job>, payload: ReceiptPayload): string | null {
  // The stored output (sbx inspect --output, ?output=true) must be what the receipt's digests cover:
  // all of it. Output the limits cut is only part of it and cannot be checked, nor can output that
  // was not valid UTF-8 (stored with U+FFFD in its place): a document carrying such output is not
  // verified; verify it without its output.
  const output = job.output as Record<string, unknown> | undefined;
  if (output !== undefined) {
    if (typeof output !== 'object' || output === null) return 'the document\'s output is not an object';
    if (payload.outputTruncated) return 'the document carries output the limits cut (outputTruncated): its receipt covers all of it, the document only part, so the output cannot be checked; verify the document without its output';
    for (const stream of ['stdout', 'stderr'] as const) {
      const kept = output[stream];
      if (kept === undefined) continue;
      const signed = payload[stream];
      if (typeof kept !== 'string' || !signed || !sameDigest(kept, signed)) return `the document's ${stream} is not what its signed receipt's digest covers (${signed?.bytes} B sha256:${signed?.sha256})${typeof kept === 'string' && kept.includes('\ufffd') ? ' (output that was not valid UTF-8 is stored with U+FFFD in its place and cannot be checked: verify the document without its output)' : ''}`;
    }
  }
  return null;
}

function sameDigest(text: string, signed: { bytes: number; sha256: string }): boolean {
  return Buffer.byteLength(text) === signed.bytes && createHash('sha256').update(text, 'utf8').digest('hex') === signed.sha256;
}

/** Equal as JSON values: objects whatever the order of their keys (a document re-serialized on its way may reorder them). */
function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (typeof v !== 'object' || v === null) return v;
  return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical((v as Record<string, unknown>)[k])]));
}
