/**
 * The typed client (client/src) against the real stack: errors typed by the API's codes, and
 * `events(id)` through a real TCP proxy that cuts every connection after a few hundred bytes,
 * mid-event: the iterator still yields every event exactly once, in order.
 */
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import {
  SbxClient, SbxConflictError, SbxConnectionError, SbxInvalidRequestError, SbxNotFoundError, parseRetryAfter, parseServerSentEvents, type JobEvent,
} from '../../client/src/index.ts';
import { startStack, type Stack } from '../harness/stack.ts';

let stack: Stack;
let api: SbxClient;

before(async () => {
  stack = await startStack();
  api = new SbxClient({ baseUrl: stack.apiUrl });
});
after(async () => {
  await api?.close();
  await stack?.stop();
});

interface CuttingProxy {
  url: string;
  /** Connections cut, and how many of those cuts fell inside an event (not on a blank line). */
  cuts: number;
  cutsMidEvent: number;
  close(): Promise<void>;
}

/**
 * A TCP proxy to `target` that forwards requests whole and answers only up to a byte budget per
 * connection (cycling through `budgets`), then destroys both sides: a connection dropped mid-stream.
 */
async function cuttingProxy(target: URL, budgets: number[]): Promise<CuttingProxy> {
  let n = 0;
  const sockets = new Set<Socket>();
  const proxy: CuttingProxy = { url: '', cuts: 0, cutsMidEvent: 0, close: async () => {} };
  const server: Server = createServer((down) => {
    const budget = budgets[n++ % budgets.length]!;
    const up = connect(Number(target.port), target.hostname);
    sockets.add(down).add(up);
    let sent = 0;
    let tail = '';
    down.pipe(up);
    up.on('data', (chunk: Buffer) => {
      const room = budget - sent;
      const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
      down.write(part);
      sent += part.length;
      tail = (tail + part.toString('latin1')).slice(-2);
      if (sent >= budget) {
        proxy.cuts++;
        if (tail !== '\n\n') proxy.cutsMidEvent++;
        up.destroy();
        down.destroy();
      }
    });
    up.on('end', () => down.end());
    for (const s of [up, down]) s.on('error', () => {}).on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  proxy.url = `http://127.0.0.1:${port}`;
  proxy.close = async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  };
  return proxy;
}

/** A TCP proxy to `target` that replaces `from` by `to` (same length) in what clients send: an older API's view. */
async function rewritingProxy(target: URL, from: string, to: string): Promise<{ url: string; rewritten: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const proxy = { url: '', rewritten: 0, close: async () => {} };
  const server: Server = createServer((down) => {
    const up = connect(Number(target.port), target.hostname);
    sockets.add(down).add(up);
    down.on('data', (chunk: Buffer) => {
      const text = chunk.toString('latin1');
      if (text.includes(from)) proxy.rewritten++;
      up.write(Buffer.from(text.split(from).join(to), 'latin1'));
    });
    down.on('end', () => up.end());
    up.pipe(down);
    for (const s of [up, down]) s.on('error', () => {}).on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  proxy.url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  proxy.close = async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  };
  return proxy;
}

/** Every event to the end; more than `max` (a client repeating events) stops it, for the comparison to fail. */
const collect = async (it: AsyncIterable<JobEvent>, max = 10_000): Promise<JobEvent[]> => {
  const out: JobEvent[] = [];
  for await (const e of it) if (out.push(e) > max) break;
  return out;
};

// Byte budgets per connection: above the headers (~250 bytes) plus the largest event (the exit
// document, ~1 KB), so every connection delivers something, and cut inside a later event.
const BUDGETS = [1500, 1733, 1917, 2111, 1311];

describe('events(id) across dropped connections', () => {
  test('a finished job replayed through a proxy that cuts every connection: every event once, in order', async () => {
    // 60 lines of ~100 bytes, printed apart so that they are separate events (~12 KB of events).
    const pad = 'x'.repeat(90);
    const job = await api.run({ image: stack.images.busybox, command: ['sh', '-c', `for i in $(seq 1 60); do echo line-$i-${pad}; sleep 0.01; done; echo done >&2`] });
    assert.equal(job.status, 'succeeded');
    const full = await collect(api.events(job.id));
    assert.equal(full.filter((e) => e.type === 'stdout').map((e) => (e as { data: string }).data).join(''), Array.from({ length: 60 }, (_, i) => `line-${i + 1}-${pad}\n`).join(''));

    const proxy = await cuttingProxy(new URL(stack.apiUrl), BUDGETS);
    const viaProxy = new SbxClient({ baseUrl: proxy.url });
    try {
      const got = await collect(viaProxy.events(job.id, { maxReconnects: 3 }), full.length * 2);
      assert.ok(proxy.cuts >= 5, `the proxy cut ${proxy.cuts} connections`);
      assert.ok(proxy.cutsMidEvent >= 1, 'at least one cut fell inside an event');
      assert.deepEqual(got, full);
    } finally {
      await viaProxy.close();
      await proxy.close();
    }
  });

  test('a running job followed live through the cutting proxy: the same events as the record', async () => {
    const sub = await api.submit({ image: stack.images.busybox, command: ['sh', '-c', 'for i in $(seq 1 40); do echo tick-$i; echo tock-$i >&2; sleep 0.02; done'] });
    const proxy = await cuttingProxy(new URL(stack.apiUrl), BUDGETS);
    const viaProxy = new SbxClient({ baseUrl: proxy.url });
    try {
      const reconnects: Array<string | null> = [];
      const live = await collect(viaProxy.events(sub.id, { onReconnect: (r) => reconnects.push(r.lastEventId) }), 1000);
      // One reconnection per cut (the last cut may fall after the exit event, with nothing left to resume).
      assert.ok(proxy.cuts >= 3 && reconnects.length >= proxy.cuts - 1 && reconnects.length <= proxy.cuts, `${proxy.cuts} cuts, ${reconnects.length} reconnects`);
      // The job's record: events with an id (`queue` positions are live only and may be re-sent on reconnection).
      const recorded = (events: JobEvent[]) => events.filter((e) => e.id !== null);
      const record = recorded(await collect(api.events(sub.id)));
      assert.deepEqual(recorded(live), record);
      const exit = live.at(-1)!;
      assert.ok(exit.type === 'exit' && exit.job.status === 'succeeded');
      assert.equal(new Set(recorded(live).map((e) => e.id)).size, record.length, 'no event twice');
    } finally {
      await viaProxy.close();
      await proxy.close();
    }
  });

  test('follow(): submit and follow in one request; cut mid-stream, the rest comes by GET with Last-Event-ID: the same events as the record', async () => {
    const proxy = await cuttingProxy(new URL(stack.apiUrl), BUDGETS);
    const viaProxy = new SbxClient({ baseUrl: proxy.url });
    try {
      const reconnects: Array<string | null> = [];
      const followed = await viaProxy.follow({ image: stack.images.busybox, command: ['sh', '-c', 'for i in $(seq 1 30); do echo tick-$i; sleep 0.02; done'] }, { onReconnect: (r) => reconnects.push(r.lastEventId) });
      assert.match(followed.id, /^j_/);
      const live = await collect(followed.events, 1000);
      assert.ok(proxy.cuts >= 2 && reconnects.length >= 1, `${proxy.cuts} cuts, ${reconnects.length} reconnects`);
      const recorded = (events: JobEvent[]) => events.filter((e) => e.id !== null);
      assert.deepEqual(recorded(live), recorded(await collect(api.events(followed.id))));
      const exit = live.at(-1)!;
      assert.ok(exit.type === 'exit' && exit.job.status === 'succeeded' && exit.job.id === followed.id);
      assert.equal(live.filter((e) => e.type === 'stdout').map((e) => (e as { data: string }).data).join(''), Array.from({ length: 30 }, (_, i) => `tick-${i + 1}\n`).join(''));
    } finally {
      await viaProxy.close();
      await proxy.close();
    }
  });

  test('follow() is one request (no GET at all when nothing breaks); against an API without ?stream (it queues the job and answers 202) the events come by GET', async () => {
    const counting = await rewritingProxy(new URL(stack.apiUrl), 'GET /v1/jobs/', 'GET /v1/jobs/');
    const direct = new SbxClient({ baseUrl: counting.url });
    try {
      const followed = await direct.follow({ image: stack.images.busybox, command: ['echo', 'one request'] });
      const events = await collect(followed.events);
      assert.equal(events.filter((e) => e.type === 'stdout').map((e) => (e as { data: string }).data).join(''), 'one request\n');
      assert.equal(counting.rewritten, 0, 'GET requests sent');
    } finally {
      await direct.close();
      await counting.close();
    }
    const older = await rewritingProxy(new URL(stack.apiUrl), 'stream=true', 'streax=true');
    const client = new SbxClient({ baseUrl: older.url });
    try {
      const followed = await client.follow({ image: stack.images.busybox, command: ['echo', 'via GET'] });
      const events = await collect(followed.events);
      assert.ok(older.rewritten >= 1, 'the proxy hid ?stream from the API');
      assert.equal(events.filter((e) => e.type === 'stdout').map((e) => (e as { data: string }).data).join(''), 'via GET\n');
      assert.equal(events.at(-1)!.type, 'exit');
    } finally {
      await client.close();
      await older.close();
    }
  });

  test('resumes after a given lastEventId and stops early without leaking the connection', async () => {
    const job = await api.run({ image: stack.images.busybox, command: ['sh', '-c', 'echo a; echo b; echo c'] });
    const full = await collect(api.events(job.id));
    const firstOut = full.findIndex((e) => e.type === 'stdout');
    assert.deepEqual(await collect(api.events(job.id, { lastEventId: full[firstOut]!.id! })), full.slice(firstOut + 1));
    for await (const e of api.events(job.id)) if (e.type === 'status') break;
  });
});

test('the SSE parser: an event only once complete, whatever the chunking and line ends; an event without id: has id null', async () => {
  const text = 'event: status\nid: 1-0\ndata: {"status":"queued"}\n\n: keep-alive\n\nevent: queue\ndata: {"position":2}\n\nevent: stdout\nid: 2-0\ndata: {"data":"a\\n"}\n\nevent: stdout\nid: 3-0\ndata: {"da';
  const parse = async (chunks: string[]) => {
    const out = [];
    for await (const e of parseServerSentEvents((async function* () { yield* chunks; })())) out.push(e);
    return out;
  };
  const whole = await parse([text]);
  assert.deepEqual(whole.map((e) => [e.event, e.id, e.lastEventId]), [['status', '1-0', '1-0'], ['queue', null, '1-0'], ['stdout', '2-0', '2-0']]);
  for (let cut = 1; cut < text.length; cut++) assert.deepEqual(await parse([text.slice(0, cut), text.slice(cut)]), whole, `split at ${cut}`);
  // The same stream with CRLF or CR line ends (a proxy may rewrite them), cut anywhere: a CRLF cut
  // between two chunks is one line end, not a line end and a blank line that ends the event early.
  for (const eol of ['\r\n', '\r']) {
    const other = text.replaceAll('\n', eol);
    assert.deepEqual(await parse([other]), whole, `${JSON.stringify(eol)} line ends`);
    for (let cut = 1; cut < other.length; cut++) assert.deepEqual(await parse([other.slice(0, cut), other.slice(cut)]), whole, `${JSON.stringify(eol)} split at ${cut}`);
  }
  // A CR that is the stream's last byte ends its line: the event it completes is not lost.
  assert.deepEqual((await parse(['data: last\r', '\r'])).map((e) => e.data), ['last']);
});

describe('typed methods and errors', () => {
  test('submit, get, wait, list with paging, cancel', async () => {
    const done = await api.run({ image: stack.images.busybox, command: ['sh', '-c', 'echo out; exit 4'], labels: { suite: 'client' } });
    assert.equal(done.status, 'failed');
    assert.equal(done.exitCode, 4);
    assert.deepEqual(done.output, { stdout: 'out\n', stderr: '' });

    const long = await api.submit({ image: stack.images.busybox, command: ['sh', '-c', 'echo go; sleep 30'] });
    assert.equal(long.status, 'queued');
    for await (const e of api.events(long.id)) if (e.type === 'stdout') break;
    const cancelled = await api.cancel(long.id);
    const final = await api.wait(long.id, { output: true, timeoutMs: 20_000 });
    assert.equal(final.status, 'cancelled', `cancel answered ${cancelled.status}`);
    assert.equal(final.output?.stdout, 'go\n');
    await assert.rejects(api.cancel(long.id), (e: unknown) => e instanceof SbxConflictError && e.code === 'already_finished' && e.status === 409);

    const ids: string[] = [];
    for await (const j of api.listAll({ limit: 2 })) ids.push(j.id);
    assert.ok(ids.includes(done.id) && ids.includes(long.id), 'listAll follows nextCursor over every page');
    assert.equal(new Set(ids).size, ids.length);
    const page = await api.list({ limit: 1, status: 'cancelled' });
    assert.equal(page.items[0]?.id, long.id);
  });

  test('a signal aborted before the call submits nothing: submit(), run() and follow() throw its reason', async () => {
    const label = { suite: 'client-aborted' };
    const stop = new AbortController();
    const reason = new Error('the caller gave up');
    stop.abort(reason);
    const job = { image: stack.images.busybox, command: ['true'], labels: label };
    await assert.rejects(api.submit(job, { signal: stop.signal }), (e: unknown) => e === reason);
    await assert.rejects(api.run(job, { signal: stop.signal }), (e: unknown) => e === reason);
    await assert.rejects(api.follow(job, { signal: stop.signal }), (e: unknown) => e === reason, 'before: the job was submitted and followed');
    const made = (await api.list({ limit: 100 })).items.filter((j) => j.labels.suite === 'client-aborted');
    assert.deepEqual(made.map((j) => j.id), [], 'no job was made');
  });

  test('API errors arrive typed with code, status and details; an unreachable API is a connection error', async () => {
    await assert.rejects(api.get('j_00000000000000000000000000'), (e: unknown) => e instanceof SbxNotFoundError && e.code === 'not_found' && e.status === 404);
    await assert.rejects(
      api.submit({ image: stack.images.busybox, limits: { memoryBytes: 1 } }),
      (e: unknown) => e instanceof SbxInvalidRequestError && e.code === 'invalid_request' && e.status === 400 && e.details.some((d) => d.path === 'limits.memoryBytes'),
    );
    const closed = await cuttingProxy(new URL(stack.apiUrl), [1]);
    await closed.close(); // nothing listens on its port any more
    const nowhere = new SbxClient(closed.url);
    await assert.rejects(nowhere.workers(), (e: unknown) => e instanceof SbxConnectionError && e.status === 0 && /cannot reach the sbx API/.test(e.message));
    await nowhere.close();
    assert.equal(parseRetryAfter('7'), 7);
    // One clock reading for the date and for parsing it: the date has whole seconds, so a second
    // reading a millisecond later, at x.999 s, read it as 29.001 s away (29).
    const now = Date.now();
    assert.equal(parseRetryAfter(new Date(now + 30_000).toUTCString(), now), 30);
  });

  test('images, pull, rmi by name, workers', async () => {
    await api.run({ image: stack.images.busybox, command: ['true'] });
    const workers = await api.workers();
    assert.equal(workers.length, 1);
    const cached = await api.images();
    assert.ok(cached.some((i) => i.image === stack.images.busybox));
    assert.deepEqual((await api.pull(stack.images.busybox)).workers, [workers[0]!.id]);
    const evicted = await api.rmi(stack.images.busybox);
    assert.equal(evicted.length, 1);
    await assert.rejects(api.rmi('never/pulled:1'), (e: unknown) => e instanceof SbxNotFoundError);
  });
});
