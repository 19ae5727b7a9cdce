/**
 * `sbx verify` facing documents and a server it should not take at their word: an empty file, and a
 * hostile server (GET /v1/receipt-keys and GET /v1/jobs/ID answered here) whose own key verifies its
 * own documents. No stack: the CLI is spawned against a local HTTP server.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { digestOf, signReceipt } from '../../../core/src/receipts/job-receipt.ts';
import { receiptKeyId } from '../../../core/src/receipts/public-keys.ts';
import { MAX_DOCUMENT_FILE_BYTES } from './verify.ts';

const SBX = new URL('../../bin/sbx.js', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'sbx-verify-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const id = 'j_01HZX0000000000000000000AB';
const server = generateKeyPairSync('ed25519'); // the hostile server's own key
const receipt = signReceipt({
  v: 1, jobId: id, tenant: 't', image: 'x/y:1', imageDigest: 'sha256:aa', command: ['true'], entrypoint: null, workdir: null, user: null, limits: {},
  status: 'succeeded', exitCode: 0, signal: null, worker: 'w', kernel: 'k', startedAt: null, finishedAt: '2026-12-07T00:00:01.000Z', usage: null,
  stdin: null, stdout: digestOf(''), stderr: digestOf(''), outputTruncated: false,
}, server.privateKey);
const http = createServer((req, res) => {
  res.setHeader('content-type', 'application/json');
  if (req.url === '/v1/receipt-keys') return void res.end(JSON.stringify({ items: [{ keyId: receiptKeyId(server.publicKey), algorithm: 'ed25519', publicKeyPem: server.publicKey.export({ type: 'spki', format: 'pem' }) }] }));
  res.end(JSON.stringify({ id, status: 'succeeded', exitCode: 0, receipt }));
});
let host = '';
before(async () => {
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  host = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
});
after(() => http.close());

function sbx(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [SBX, ...args], { env: { PATH: process.env.PATH!, HOME: dir, SBX_HOST: host, SBX_API_KEY: 'k' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

test('a file holding no job document is an error, exit 1 (before: no output, exit 0)', async () => {
  const empty = join(dir, 'empty.json');
  writeFileSync(empty, '[]');
  const keyFile = join(dir, 'k.pub');
  writeFileSync(keyFile, server.publicKey.export({ type: 'spki', format: 'pem' }));
  const r = await sbx(['verify', '--file', '--key', keyFile, empty]);
  assert.deepEqual(r, { code: 1, stdout: '', stderr: `sbx: ${empty}: holds no job document (an empty array): nothing to verify\n` });
});

test('without --key, a verified line comes with the warning that the server\'s own key was trusted (before: "verified" alone)', async () => {
  const r = await sbx(['verify', id]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`^${id}\tverified \\(key ${receiptKeyId(server.publicKey)}\\)`));
  assert.equal(r.stderr, `sbx: checking with the keys the server lists (${host}/v1/receipt-keys), not a key held apart: "verified" means unchanged since that server signed it; give --key receipt.pub to check it is the service you trust\n`);
  const json = await sbx(['verify', '--format', 'json', id]);
  assert.equal(JSON.parse(json.stdout).keyFrom, 'server');
  // With a key held apart, the server's own key no longer counts.
  const mine = join(dir, 'mine.pub');
  writeFileSync(mine, generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }));
  const held = await sbx(['verify', '--key', mine, '--format', 'json', id]);
  assert.equal(held.code, 1);
  assert.equal(held.stderr, '');
  assert.equal(JSON.parse(held.stdout).code, 'unknown_key');
});

test('--file: a document lying about a signed field it carries (limits) is NOT verified; a verified line names the fields no signature covers (before: verified, nothing said)', async () => {
  const keyFile = join(dir, 'server.pub');
  writeFileSync(keyFile, server.publicKey.export({ type: 'spki', format: 'pem' }));
  const doc = { id, status: 'succeeded', exitCode: 0, limits: {}, labels: { grade: 'A' }, error: null, timings: { createdAt: '2026-12-07T00:00:00.000Z', finishedAt: '2026-12-07T00:00:01.000Z' }, receipt };
  const honest = join(dir, 'honest.json');
  writeFileSync(honest, JSON.stringify(doc));
  const ok = await sbx(['verify', '--file', '--key', keyFile, honest]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /\tstdout 0 B sha256:[0-9a-f]{64}\tnot signed: labels, error, timings\.createdAt\n$/);
  assert.deepEqual(JSON.parse((await sbx(['verify', '--file', '--key', keyFile, '--format', 'json', honest])).stdout).unsigned, ['labels', 'error', 'timings.createdAt']);
  const lying = join(dir, 'lying.json');
  writeFileSync(lying, JSON.stringify({ ...doc, limits: { memoryBytes: 4294967296 } }));
  const r = await sbx(['verify', '--file', '--key', keyFile, lying]);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, `${id}\tNOT verified\tthe document's limits ({"memoryBytes":4294967296}) is not its signed receipt's ({})\n`);
});

test('--file and --key read at most their cap: /dev/zero or a file past it is an error of its own, exit 1, the other files still checked (before: read to the end, GiBs of memory)', async () => {
  const keyFile = join(dir, 'server.pub');
  writeFileSync(keyFile, server.publicKey.export({ type: 'spki', format: 'pem' }));
  const honest = join(dir, 'capped-honest.json');
  writeFileSync(honest, JSON.stringify({ id, receipt }));
  const sparse = join(dir, 'sparse.json');
  writeFileSync(sparse, '');
  truncateSync(sparse, MAX_DOCUMENT_FILE_BYTES + 1); // no disk: refused from its size, unread
  const r = await sbx(['verify', '--file', '--key', keyFile, '/dev/zero', sparse, honest]);
  assert.equal(r.code, 1);
  assert.match(r.stdout, new RegExp(`^${id}\tverified `));
  assert.equal(r.stderr, `sbx: /dev/zero: is larger than sbx verify --file reads: at most 128 MiB\nsbx: ${sparse}: is larger than sbx verify --file reads: at most 128 MiB\n`);
  const key = await sbx(['verify', '--file', '--key', '/dev/zero', honest]);
  assert.deepEqual(key, { code: 1, stdout: '', stderr: 'sbx: --key /dev/zero: is larger than sbx verify --key reads: at most 1 MiB\n' });
});
