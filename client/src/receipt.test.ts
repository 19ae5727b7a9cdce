/**
 * checkReceipt and the payload's format version `v`: a receipt is checked as the format this client
 * reads (v 1). Fields added to that format leave v at 1 and are ignored here; a receipt of another
 * format (a newer worker's, whose fields may mean something else) is not reported verified, however
 * good its signature. No server: receipts signed here with a fresh key.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { test } from 'node:test';
import { signReceipt, type ReceiptPayload } from '../../core/src/receipts/job-receipt.ts';
import { checkReceipt } from './receipt.ts';

const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const digest = { bytes: 0, sha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' };
const payload: ReceiptPayload = {
  v: 1, jobId: 'j_01HZX0000000000000000000AB', tenant: 't', image: 'x/y:1', imageDigest: null, command: ['true'], entrypoint: null,
  workdir: null, user: null, limits: {}, status: 'succeeded', exitCode: 0, signal: null, worker: 'w', kernel: 'k',
  startedAt: '2026-12-07T00:00:00.000Z', finishedAt: '2026-12-07T00:00:01.000Z', usage: null, stdin: null, stdout: digest, stderr: digest, outputTruncated: false,
};
const jobWith = (p: unknown) => ({ id: payload.jobId, receipt: signReceipt(p as ReceiptPayload, privateKey) });

test('v 1 verifies, fields added to it included; another format version is not verified, its signature good or not', () => {
  assert.equal(checkReceipt(jobWith(payload), [{ key: publicKey }]).ok, true);
  assert.equal(checkReceipt(jobWith({ ...payload, gpu: { model: 'x' } }), [{ key: publicKey }]).ok, true, 'a field added to v 1');
  for (const v of [2, undefined, '1']) {
    const check = checkReceipt(jobWith({ ...payload, v }), [{ key: publicKey }]);
    assert.equal(check.ok, false, `v ${JSON.stringify(v)} verified`);
    assert.match((check as { reason: string }).reason, /format .* this client reads v 1/);
  }
});
