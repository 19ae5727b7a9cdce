/**
 * Request bodies are counted as they stream: a real API process receives a 200 MiB chunked body
 * with no Content-Length (generated lazily here, writes honouring backpressure) and answers 413
 * payload_too_large without buffering it, and closes the connection before the body's end.
 *
 * Its RSS grows by less than 96 MiB, under half the body: past the limit the server discards what
 * arrives (@hono/node-server reads at most 64 MiB or 500 ms more, then closes), and those discarded
 * chunks stay in RSS until V8's next GC, which its external-memory limit (64 MiB) triggers. On a busy
 * machine the client sees the 413 late and sends tens of MiB meanwhile: a CI run saw +32.3 MiB, the
 * 413 after 32.9 MiB; a quiet one +2 to +8 MiB.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { describe, test } from 'node:test';
import { useApiProcess } from '../../../test/harness/api-process.ts';

const MiB = 1024 * 1024;
const stack = useApiProcess();

function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

interface Answer {
  status: number;
  body: string;
  /** Bytes written before the answer came. */
  sentBeforeAnswer: number;
  /** Bytes written in all (with keepSending, until the server closed the connection). */
  sentBytes: number;
  /** The connection was closed under the writer before it had sent `total`. */
  cutOff: boolean;
}

/**
 * POST `total` bytes of JSON whitespace in 64 KiB chunks (Transfer-Encoding: chunked), waiting for
 * 'drain' whenever the socket is full. Stops writing when the answer arrives, or with keepSending
 * goes on until `total` or until the server closes the connection.
 */
async function postChunked(url: string, total: number, keepSending = false): Promise<Answer> {
  // A keep-alive connection, as curl and browsers use (a client sending `Connection: close` gets
  // the connection closed right after the answer instead, by Node's HTTP server).
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const req = http.request(`${url}/v1/jobs`, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } });
  const chunk = Buffer.alloc(64 * 1024, 0x20);
  let answered = false;
  let closed = false;
  let sentBytes = 0;
  let sentBeforeAnswer = 0;
  let wake = () => {};
  const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
    req.on('response', (res) => {
      answered = true;
      sentBeforeAnswer = sentBytes;
      if (!keepSending) wake();
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', (e) => {
      if (!answered) reject(e);
    });
  });
  req.on('close', () => {
    closed = true;
    wake();
  });
  const writing = (async () => {
    while (sentBytes < total && (keepSending || !answered) && !closed && !req.destroyed) {
      sentBytes += chunk.length;
      if (req.write(chunk)) continue;
      await new Promise<void>((resolve) => {
        wake = () => {
          req.off('drain', wake);
          resolve();
        };
        req.on('drain', wake);
      });
    }
    const cutOff = sentBytes < total && (closed || req.destroyed);
    if (!closed && !req.destroyed && !answered) req.end();
    return cutOff;
  })();
  const got = await answer;
  const cutOff = await writing;
  req.destroy();
  agent.destroy();
  return { ...got, sentBytes, sentBeforeAnswer, cutOff };
}

describe('request bodies', () => {
  // The timeout only turns a hang (a server that neither reads nor closes) into a failure.
  test('a 200 MiB chunked body without Content-Length is cut at the limit with 413; RSS grows < 96 MiB', { timeout: 120_000 }, async () => {
    // Warm up: code paths and buffer pools exist before the measurement.
    const small = await postChunked(stack.api.url, 2 * MiB);
    assert.equal(small.status, 413, small.body);
    const before = rssBytes(stack.api.pid);
    // The client goes on sending after the 413, as a careless or hostile one would.
    const big = await postChunked(stack.api.url, 200 * MiB, true);
    const afterRss = rssBytes(stack.api.pid);
    const growth = afterRss - before;
    process.stdout.write(`# API RSS ${(before / MiB).toFixed(1)} MiB -> ${(afterRss / MiB).toFixed(1)} MiB (+${(growth / MiB).toFixed(1)} MiB); the 413 came after ${(big.sentBeforeAnswer / MiB).toFixed(1)} MiB, the connection was closed after ${(big.sentBytes / MiB).toFixed(1)} MiB\n`);
    assert.equal(big.status, 413, `status ${big.status}: ${big.body}`);
    assert.equal((JSON.parse(big.body) as { error: { code: string } }).error.code, 'payload_too_large');
    assert.ok(growth < 96 * MiB, `API RSS grew by ${(growth / MiB).toFixed(1)} MiB (limit 96 MiB: at most 64 MiB discarded past the limit, not yet collected)`);
    assert.ok(big.sentBeforeAnswer < 200 * MiB, `the API read all ${big.sentBeforeAnswer} bytes before answering`);
    assert.ok(big.cutOff, `the API read the whole rest of the body (${big.sentBytes} bytes) instead of closing the connection`);
  });

  test('a body just under the limit is read (chunked), one just over is 413', async () => {
    const ok = await postChunked(stack.api.url, 1 * MiB - 64 * 1024); // whitespace only: invalid JSON, but read in full
    assert.equal(ok.status, 400, ok.body);
    assert.equal((JSON.parse(ok.body) as { error: { code: string } }).error.code, 'invalid_json');
    const over = await postChunked(stack.api.url, 1 * MiB + 64 * 1024);
    assert.equal(over.status, 413, over.body);
  });

  test('the API still answers on new connections after cutting a body', async () => {
    const res = await fetch(`${stack.api.url}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image: '127.0.0.1:5000/x/y:z', command: ['true'] }) });
    assert.equal(res.status, 202, await res.text());
  });
});
