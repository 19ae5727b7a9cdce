import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { ByteRing, createByteRing, RingClosedError } from './byte-ring.ts';

/** Reads everything the ring has right now (never waits: the test knows what was written). */
function drain(ring: ByteRing, bytes: number): Buffer {
  const parts: Buffer[] = [];
  let got = 0;
  while (got < bytes) {
    const view = ring.next()!;
    const n = Math.min(view.length, bytes - got);
    parts.push(Buffer.from(view.subarray(0, n)));
    ring.consumed(n);
    got += n;
  }
  return Buffer.concat(parts);
}

test('bytes come out in order across the end of the ring, then null once it ended', () => {
  const ring = new ByteRing(createByteRing(10));
  ring.write(Buffer.from('abcdefg'));
  assert.equal(drain(ring, 5).toString(), 'abcde');
  ring.write(Buffer.from('hijklmn')); // 2 left + 7 = 9 of 10, wrapping
  const first = ring.next()!;
  assert.equal(first.toString(), 'fghij', 'a read stops at the end of the ring');
  ring.consumed(first.length);
  assert.equal(drain(ring, 4).toString(), 'klmn');
  ring.end();
  assert.equal(ring.next(), null);
});

test('an ended ring still gives what was buffered before null', () => {
  const ring = new ByteRing(createByteRing(16));
  ring.write(Buffer.from('tail'));
  ring.end();
  assert.equal(drain(ring, 4).toString(), 'tail');
  assert.equal(ring.next(), null);
});

test('an abort stops the reader at once, buffered bytes or not, and the writer', () => {
  const ring = new ByteRing(createByteRing(16));
  ring.write(Buffer.from('unread'));
  ring.abort();
  assert.throws(() => ring.next(), (e: unknown) => e instanceof RingClosedError && e.by === 'aborted');
  assert.throws(() => ring.write(Buffer.from('x')), (e: unknown) => e instanceof RingClosedError && e.by === 'aborted');
});

test('a stopped reader makes the next write fail, even one waiting for room; the first reason stays', () => {
  const ring = new ByteRing(createByteRing(4));
  ring.stop();
  assert.throws(() => ring.write(Buffer.from('more than four bytes')), (e: unknown) => e instanceof RingClosedError && e.by === 'stopped');
  ring.abort();
  assert.throws(() => ring.write(Buffer.from('x')), (e: unknown) => e instanceof RingClosedError && e.by === 'stopped');
  ring.reset();
  ring.write(Buffer.from('ok'));
  assert.equal(drain(ring, 2).toString(), 'ok', 'reset opens it again, empty');
});

/** Runs `body` (JavaScript, with `ByteRing`, `ring` and `workerData` in scope) in a new thread; resolves with what it returns. */
function inThread(body: string, workerData: unknown): Promise<unknown> {
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const ringUrl = new URL('./byte-ring.ts', import.meta.url).href;
  const worker = new Worker(
    `import(${JSON.stringify(tsxApi)}).then(async ({ register }) => {
      register();
      const { ByteRing } = await import(${JSON.stringify(ringUrl)});
      const { workerData, parentPort } = await import('node:worker_threads');
      const ring = new ByteRing(workerData.buffers);
      parentPort.postMessage(await (async () => { ${body} })());
    })`,
    { eval: true, workerData },
  );
  return new Promise((resolve, reject) => {
    worker.once('message', (m) => {
      resolve(m);
      void worker.terminate();
    });
    worker.once('error', reject);
  });
}

test('two threads: 8 MB in pieces of every size through a 4 KiB ring arrive exactly', { timeout: 60_000 }, async () => {
  const buffers = createByteRing(4096);
  // The producer: a deterministic stream (byte i = i * 7 mod 251) in pieces of 1 to 9,000 bytes.
  const produced = inThread(
    `let at = 0, size = 1;
    while (at < 8_000_000) {
      const n = Math.min(size, 8_000_000 - at);
      const piece = Buffer.alloc(n);
      for (let i = 0; i < n; i++) piece[i] = ((at + i) * 7) % 251;
      ring.write(piece);
      at += n;
      size = (size * 37 + 11) % 9000 + 1;
    }
    ring.end();
    return at;`,
    { buffers },
  );
  const consumed = inThread(
    `const { createHash } = await import('node:crypto');
    const seen = createHash('sha256');
    let total = 0;
    for (;;) {
      const view = ring.next();
      if (view === null) break;
      seen.update(view);
      total += view.length;
      ring.consumed(view.length);
    }
    return { total, digest: seen.digest('hex') };`,
    { buffers },
  );
  const expected = createHash('sha256');
  const chunk = Buffer.alloc(1_000_000);
  for (let at = 0; at < 8_000_000; at += chunk.length) {
    for (let i = 0; i < chunk.length; i++) chunk[i] = ((at + i) * 7) % 251;
    expected.update(chunk);
  }
  try {
    assert.equal(await produced, 8_000_000);
    assert.deepEqual(await consumed, { total: 8_000_000, digest: expected.digest('hex') });
  } finally {
    new ByteRing(buffers).abort(); // a thread still waiting (a failure above) stops
  }
});
