/**
 * checkReceipt and the payload's format version `v`: a receipt is checked as the format this client
 * reads (v 1). Fields added to that format leave v at 1 and are ignored here; a receipt of another
 * format (a newer worker's, whose fields may mean something else) is not reported verified, however
 * good its signature. No server: receipts signed here with a fresh key.
 */
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { test } from 'node:test';
import { signReceipt, type ReceiptPayload } from '../../core/src/receipts/job-receipt.ts';
import { receiptKeyId } from '../../core/src/receipts/public-keys.ts';
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

// Attacks on the checker (audit of signed receipts): each was verified, or threw, before.
const good = jobWith(payload);
const failure = (job: unknown, keys: Parameters<typeof checkReceipt>[1] = [{ key: publicKey }]) => {
  const check = checkReceipt(job as Parameters<typeof checkReceipt>[0], keys);
  assert.equal(check.ok, false, JSON.stringify(check));
  return check as { code: string; reason: string };
};

test('a document whose own fields disagree with its signed payload is not verified (before: verified, job.exitCode 0 read from a receipt of exit 1)', () => {
  const signed = jobWith({ ...payload, status: 'failed', exitCode: 1 });
  assert.equal(checkReceipt({ ...signed, status: 'failed', exitCode: 1, image: 'x/y:1', command: ['true'], outputTruncated: false, timings: { finishedAt: payload.finishedAt } } as never, [{ key: publicKey }]).ok, true, 'the document as signed');
  const lie = failure({ ...signed, status: 'succeeded', exitCode: 0 });
  assert.equal(lie.code, 'document_mismatch');
  assert.match(lie.reason, /the document's status \("succeeded"\) is not its signed receipt's \("failed"\)/);
  for (const [field, value] of [['exitCode', 0], ['command', ['echo', 'ok']], ['imageDigest', 'sha256:00'], ['image', 'x/z:1'], ['worker', 'w2'], ['outputTruncated', true]] as const) {
    assert.equal(failure({ ...signed, [field]: value }).code, 'document_mismatch', field);
  }
  assert.equal(failure({ ...signed, timings: { finishedAt: '2027-01-01T00:00:00.000Z' } }).code, 'document_mismatch', 'timings.finishedAt');
});

test('stored output must be what the receipt\'s digests cover; output the limits cut cannot be checked (before: forged output verified)', () => {
  const sha = (s: string) => ({ bytes: Buffer.byteLength(s), sha256: createHash('sha256').update(s).digest('hex') });
  const signed = jobWith({ ...payload, stdout: sha('real\n'), stderr: sha('') });
  assert.equal(checkReceipt({ ...signed, output: { stdout: 'real\n', stderr: '' } } as never, [{ key: publicKey }]).ok, true, 'the output as written');
  const forged = failure({ ...signed, output: { stdout: 'forged\n', stderr: '' } });
  assert.equal(forged.code, 'document_mismatch');
  assert.match(forged.reason, /the document's stdout is not what its signed receipt's digest covers \(5 B sha256:/);
  const cut = failure({ ...jobWith({ ...payload, stdout: sha('real\n'), outputTruncated: true }), output: { stdout: 'rea', stderr: '' } });
  assert.match(cut.reason, /output the limits cut .* verify the document without its output/);
});

test('hostile receipts and keys are failures with a code, never a throw (before: TypeError, DECODER error)', () => {
  const signedNull = { payload: 'null', signature: sign(null, Buffer.from('null'), privateKey).toString('base64'), algorithm: 'ed25519', keyId: good.receipt.keyId };
  const cases: Array<[unknown, string]> = [
    [{ id: good.id, receipt: 'x' }, 'malformed'],
    [{ id: good.id, receipt: { ...good.receipt, payload: 5 } }, 'malformed'],
    [{ id: good.id, receipt: { ...good.receipt, signature: null } }, 'malformed'],
    [{ id: good.id, receipt: signedNull }, 'malformed'],
    [{ id: good.id, receipt: { ...good.receipt, algorithm: 'rsa' } }, 'unknown_algorithm'],
    [{ id: 'j_other', receipt: good.receipt }, 'other_job'],
    [{ id: good.id }, 'no_receipt'],
  ];
  for (const [job, code] of cases) assert.equal(failure(job).code, code, JSON.stringify(job).slice(0, 120));
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
  for (const publicKeyPem of ['junk', rsa]) assert.equal(failure(good, [{ keyId: good.receipt.keyId, algorithm: 'ed25519', publicKeyPem }]).code, 'bad_key');
});

test('one signed text, one receipt: no lone-surrogate twin of the payload, no second spelling of the signature (before: both verified)', () => {
  const withFffd = jobWith({ ...payload, command: ['echo', '\ufffd'] });
  assert.equal(checkReceipt(withFffd, [{ key: publicKey }]).ok, true);
  const twin = { ...withFffd, receipt: { ...withFffd.receipt, payload: withFffd.receipt.payload.replace('\ufffd', '\ud800') } };
  assert.notEqual(twin.receipt.payload, withFffd.receipt.payload);
  assert.match(failure(twin).reason, /lone UTF-16 surrogate/);
  const respelled = { ...good, receipt: { ...good.receipt, signature: `!!${good.receipt.signature.replace(/=+$/, '')}##` } };
  assert.match(failure(respelled).reason, /not canonical base64/);
});

test('the key id reported is the verifying key\'s own, not the receipt\'s unsigned label (before: "deadbeefdeadbeef")', () => {
  const check = checkReceipt({ ...good, receipt: { ...good.receipt, keyId: 'deadbeefdeadbeef' } }, [{ key: publicKey }]);
  assert.deepEqual(check.ok && check.keyId, receiptKeyId(publicKey));
});

// Every signed field the document also carries is compared (audit of signed receipts): a document
// lying about its limits, usage, output files, start, network or interactive mode was "verified".
test('a document lying about any signed field it carries is not verified: limits, usage, outputFiles, timings.startedAt, network, egress counts, interactive (before: verified)', () => {
  const limits = { memoryBytes: 268435456, cpus: 1, pids: 128, timeoutMs: 30000 };
  const usage = { cpuMs: 5000, memoryPeakBytes: 1000, wallMs: 6000, oomKilled: true, pidsLimitHit: false };
  const outputFiles = [{ path: 'result.txt', bytes: 5, sha256: 'aa'.repeat(32) }];
  const network = { mode: 'egress', egressHosts: ['example.com'], connections: 3, refused: 1, bytesSent: 10, bytesReceived: 20 } as const;
  const signed = jobWith({ ...payload, limits, usage, outputFiles, network, interactive: { openStdin: true, tty: false, signals: 0 } });
  // As the API gives it: the same values, keys in another order (the comparison is of JSON values).
  const asStored = {
    ...signed, limits: { timeoutMs: 30000, pids: 128, cpus: 1, memoryBytes: 268435456 }, usage, outputFiles, network: 'egress', egressHosts: ['example.com'],
    egress: { connections: 3, refused: 1, bytesSent: 10, bytesReceived: 20, refusals: [] }, interactive: { openStdin: true, tty: false },
    timings: { createdAt: '2026-12-06T23:59:59.000Z', startedAt: payload.startedAt, finishedAt: payload.finishedAt },
  };
  assert.equal(checkReceipt(asStored as never, [{ key: publicKey }]).ok, true, JSON.stringify(checkReceipt(asStored as never, [{ key: publicKey }])));
  const lies: Array<[string, Record<string, unknown>, RegExp]> = [
    ['limits', { limits: { ...limits, memoryBytes: 4294967296 } }, /the document's limits \(.*"memoryBytes":4294967296.*\) is not its signed receipt's/],
    ['usage', { usage: { ...usage, oomKilled: false } }, /the document's usage /],
    ['usage null', { usage: null }, /the document's usage \(null\)/],
    ['outputFiles', { outputFiles: [{ ...outputFiles[0], sha256: 'bb'.repeat(32) }] }, /the document's outputFiles /],
    ['outputFiles none signed', { outputFiles: [] }, /the document's outputFiles \(\[\]\)/],
    ['timings.startedAt', { timings: { ...asStored.timings, startedAt: '2026-12-07T00:00:00.500Z' } }, /the document's timings\.startedAt /],
    ['network', { network: 'none' }, /the document's network \("none"\) is not its signed receipt's \("egress"\)/],
    ['egressHosts', { egressHosts: ['example.org'] }, /the document's egressHosts /],
    ['egress count', { egress: { ...asStored.egress, refused: 0 } }, /the document's egress\.refused \(0\) is not its signed receipt's \(1\)/],
    ['interactive', { interactive: { openStdin: true, tty: true } }, /the document's interactive\.tty \(true\)/],
  ];
  for (const [name, lie, reason] of lies) {
    const check = failure({ ...asStored, ...lie });
    assert.equal(check.code, 'document_mismatch', name);
    assert.match(check.reason, reason, name);
  }
  // A job the payload says had loopback only, or was not interactive, cannot be documented otherwise.
  const plain = jobWith(payload);
  assert.match(failure({ ...plain, network: 'egress' }).reason, /the document's network \("egress"\) is not its signed receipt's \(none: loopback only\)/);
  assert.match(failure({ ...plain, egress: { connections: 0, refused: 0, bytesSent: 0, bytesReceived: 0 } }).reason, /egress counts, but its signed receipt is of a job with no network egress/);
  assert.match(failure({ ...plain, interactive: { openStdin: true, tty: false } }).reason, /interactive, but its signed receipt is of a job that was not/);
  assert.match(failure({ ...plain, outputFiles: [] }).reason, /the document's outputFiles \(\[\]\) is not its signed receipt's \(absent\)/);
  assert.equal(checkReceipt({ ...plain, network: 'none' } as never, [{ key: publicKey }]).ok, true, '"none" is a payload without network');
});

test('a verified check lists the document\'s fields the signature does not cover (before: nothing said labels or error were unsigned)', () => {
  const doc = {
    ...good, status: 'succeeded', labels: { grade: 'A' }, error: null, liveUsage: undefined, placement: { imageCached: true, hops: 0, handedFrom: null },
    timings: { createdAt: '2026-12-06T23:59:59.000Z', startedAt: payload.startedAt, finishedAt: payload.finishedAt, queueMs: 1 },
    egress: { connections: 0, refused: 0, bytesSent: 0, bytesReceived: 0, refusals: [] }, output: { stdout: '', stderr: '' },
  };
  const check = checkReceipt({ ...doc, egress: undefined } as never, [{ key: publicKey }]);
  assert.equal(check.ok, true, JSON.stringify(check));
  assert.deepEqual((check as { unsigned: string[] }).unsigned, ['labels', 'error', 'placement', 'timings.createdAt', 'timings.queueMs']);
  const bare = checkReceipt(good, [{ key: publicKey }]);
  assert.deepEqual((bare as { unsigned: string[] }).unsigned, [], 'id and receipt alone: all signed');
});

test('labels and error, signed since 2026-12-07, are compared and not listed as unsigned; in an older receipt they stay unsigned (before: a document could change a job\'s labels, e.g. which submission a grade is for, and still verify)', () => {
  const signed = jobWith({ ...payload, status: 'timeout', labels: { submission: 's-17' }, error: { code: 'output_idle_timeout', message: 'quiet' } });
  const doc = { ...signed, status: 'timeout', labels: { submission: 's-17' }, error: { message: 'quiet', code: 'output_idle_timeout' }, timings: { createdAt: '2026-12-06T23:59:59.000Z' } };
  const check = checkReceipt(doc as never, [{ key: publicKey }]);
  assert.equal(check.ok, true, JSON.stringify(check));
  assert.deepEqual((check as { unsigned: string[] }).unsigned, ['timings.createdAt']);
  const relabelled = failure({ ...doc, labels: { submission: 's-18' } });
  assert.equal(relabelled.code, 'document_mismatch');
  assert.match(relabelled.reason, /the document's labels \(\{"submission":"s-18"\}\) is not its signed receipt's/);
  assert.match(failure({ ...doc, error: null }).reason, /the document's error \(null\) is not its signed receipt's/);
  assert.match(failure({ ...jobWith({ ...payload, labels: {}, error: null }), labels: { grade: 'A' } }).reason, /labels .* is not its signed receipt's \(\{\}\)/, 'labels added to a job that had none');
  // An older receipt (no labels, no error in its payload): they cannot be checked, and are said to be unsigned.
  const old = checkReceipt({ ...good, labels: { grade: 'A' }, error: null } as never, [{ key: publicKey }]);
  assert.deepEqual((old as { unsigned: string[] }).unsigned, ['labels', 'error']);
});

test('a payload whose network or interactive is not an object is a failure, never a throw', () => {
  for (const network of [null, 5, 'egress']) assert.equal(failure({ ...jobWith({ ...payload, network }), network: 'egress', egress: { connections: 0 } }).code, 'document_mismatch', JSON.stringify(network));
  assert.equal(failure({ ...jobWith({ ...payload, interactive: null }), interactive: { openStdin: true, tty: false } }).code, 'document_mismatch');
});
