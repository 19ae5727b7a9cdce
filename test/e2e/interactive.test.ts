/**
 * Interactive jobs end to end (API and worker as separate processes, real Redis): the attach
 * WebSocket (frames, auth, tenants, several readers, backpressure-bounded stdin through Redis, no
 * key left behind, the idle limit, replay over SSE/logs), and `sbx run -it` / `-i` / `attach`
 * driven as a user would, on a real pseudo-terminal (Python's pty module).
 */
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { attachJob, SbxClient, SbxConnectionError, SbxNotFoundError, SbxRateLimitedError, SbxUnauthorizedError, type Job } from '../../client/src/index.ts';
import { waitUntil } from '../harness/redis.ts';
import { sbxCli } from '../harness/cli.ts';
import { startStack, type Stack } from '../harness/stack.ts';

/** The CLI from this checkout's sources, bundled once (harness/cli.ts). */
let SBX = '';
const PTY = new URL('./interactive/pty-session.py', import.meta.url).pathname;
const KEY = 'tty-user-key-aaaaaaaaaaaaaaaaaa';
const OTHER = 'tty-other-key-bbbbbbbbbbbbbbbbb';
const ADMIN = 'tty-admin-key-ccccccccccccccccc';
const ONE_STREAM = 'tty-one-stream-ddddddddddddddd';

let stack: Stack;
let api: SbxClient;
let redis: Redis;
let image: string;
let tmp: string;

before(async () => {
  SBX = await sbxCli();
  tmp = mkdtempSync(join(tmpdir(), 'sbx-tty-'));
  const keys = [
    { key: KEY, tenant: 'tty' },
    { key: OTHER, tenant: 'other' },
    { key: ADMIN, tenant: 'ops', role: 'admin' },
    { key: ONE_STREAM, tenant: 'one', quota: { streams: 1 } },
  ];
  stack = await startStack({ adminKey: ADMIN, env: { SBX_API_KEYS: JSON.stringify(keys) } });
  api = new SbxClient({ baseUrl: stack.apiUrl, apiKey: KEY });
  redis = new Redis(stack.env.SBX_REDIS_URL!);
  image = stack.images.busybox;
});
after(async () => {
  await api?.close();
  redis?.disconnect();
  await stack?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

async function stdinKeys(): Promise<string[]> {
  return redis.keys('*:stdin');
}

function collect() {
  const out = { stdout: '', stderr: '' };
  return { out, onOutput: (s: 'stdout' | 'stderr', d: Buffer) => { out[s] += d.toString(); } };
}

/** 'open' when the server upgrades this request to a WebSocket, else the HTTP status it answered. */
function upgradeAnswer(url: string, headers: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': randomBytes(16).toString('base64'), ...headers } });
    req.on('upgrade', (_res, socket) => { socket.destroy(); resolve('open'); });
    req.on('response', (res) => { res.resume(); resolve(String(res.statusCode)); });
    req.on('error', reject);
  });
}

describe('attach (WebSocket)', () => {
  test('streams stdin through Redis to the worker in order, EOF ends it, output and exit come back; no key is left', async () => {
    const job = await api.submit({ image, openStdin: true, command: ['sh', '-c', 'read a; echo "got $a"; wc -c'] });
    const c = collect();
    const att = await attachJob(job.id, { baseUrl: stack.apiUrl, apiKey: KEY, logs: true, onOutput: c.onOutput });
    await att.write('hello\n');
    await waitUntil(async () => c.out.stdout.includes('got hello'), 20_000, 'the echo of the first line');
    const chunk = Buffer.alloc(256 * 1024, 0x61);
    for (let i = 0; i < 12; i++) await att.write(chunk); // 3 MiB: past the stream's bound, so it waits
    att.eof();
    const end = await att.ended;
    assert.equal(end?.status, 'succeeded');
    assert.equal(c.out.stdout, `got hello\n${12 * 256 * 1024}\n`);
    assert.deepEqual(await stdinKeys(), [], 'the stdin stream is removed when the job ends');
  });

  test('same auth and tenant rules: no key 401, another tenant 404, key as ?token= or subprotocol', async () => {
    const job = await api.submit({ image, openStdin: true, command: ['cat'] });
    const url = `${stack.apiUrl}/v1/jobs/${job.id}/attach`;
    assert.equal(await upgradeAnswer(url), '401');
    assert.equal(await upgradeAnswer(url, { authorization: `Bearer ${OTHER}` }), '404');
    assert.equal(await upgradeAnswer(`${url}?token=${KEY}`), 'open');
    assert.equal(await upgradeAnswer(url, { 'sec-websocket-protocol': `sbx.v1, sbx.bearer.${KEY}` }), 'open');
    assert.equal(await upgradeAnswer(url, { authorization: `Bearer ${KEY}` }), 'open');
    await api.cancel(job.id);
    await api.wait(job.id);
    const plain = await fetch(url, { headers: { authorization: `Bearer ${KEY}` } });
    assert.equal(plain.status, 400, 'without Upgrade: websocket');
    await waitUntil(async () => (await stdinKeys()).length === 0, 5000, 'no stdin key after a cancel');
    // The client throws the API's own answer to the refused upgrade, typed like every other call's.
    const refused = (apiKey: string) => attachJob(job.id, { baseUrl: stack.apiUrl, apiKey, onOutput: () => {} });
    await assert.rejects(refused(OTHER), (e) => e instanceof SbxNotFoundError && e.code === 'not_found' && e.status === 404 && e.message === `cannot attach to job ${job.id}: no job ${job.id}`);
    await assert.rejects(refused('tty-wrong-key-ddddddddddddddddd'), (e) => e instanceof SbxUnauthorizedError && e.code === 'unauthorized' && /send a valid API key/.test(e.message));
  });

  test('a refused attach says why: over the tenant\'s stream quota (429 with Retry-After), or no API at all', async () => {
    const one = new SbxClient({ baseUrl: stack.apiUrl, apiKey: ONE_STREAM });
    const job = await one.submit({ image, openStdin: true, command: ['cat'] });
    const held = new AbortController();
    const events = await fetch(`${stack.apiUrl}/v1/jobs/${job.id}/events`, { headers: { authorization: `Bearer ${ONE_STREAM}` }, signal: held.signal });
    assert.equal(events.status, 200, 'the tenant\'s one event stream');
    try {
      const e = await attachJob(job.id, { baseUrl: stack.apiUrl, apiKey: ONE_STREAM, onOutput: () => {} }).then(
        (att) => { att.close(); return null; },
        (err: unknown) => err,
      );
      assert.ok(e instanceof SbxRateLimitedError, `a typed 429, got ${String(e)}`);
      assert.equal(e.code, 'rate_limited');
      assert.equal(e.status, 429);
      assert.ok(e.retryAfter !== null && e.retryAfter >= 1, `retryAfter ${e.retryAfter}`);
      assert.match(e.message, new RegExp(`^cannot attach to job ${job.id}: .+`));
    } finally {
      held.abort();
      await one.cancel(job.id);
      await one.close();
    }
    // A server that takes the connection and hangs up: no answer, so a connection error.
    const hangUp = net.createServer((socket) => socket.destroy());
    await new Promise<void>((r) => hangUp.listen(0, '127.0.0.1', () => r()));
    try {
      const baseUrl = `http://127.0.0.1:${(hangUp.address() as net.AddressInfo).port}`;
      await assert.rejects(attachJob(job.id, { baseUrl, onOutput: () => {} }), (e) => e instanceof SbxConnectionError && e.code === 'connection_failed' && e.message.startsWith(`cannot reach the sbx API at ${baseUrl}`));
    } finally {
      hangUp.close();
    }
  });

  test('attaching to a job that has just ended (without ?logs) gets its exit frame, not a close without one', async () => {
    const done = await api.run({ image, command: ['sh', '-c', 'echo bye; exit 4'] });
    assert.equal(done.status, 'failed');
    const { out, onOutput } = collect();
    const att = await attachJob(done.id, { baseUrl: stack.apiUrl, apiKey: KEY, onOutput });
    const ended = await att.ended;
    assert.equal(ended?.exitCode, 4, 'the exit frame with the job\'s document');
    assert.equal(out.stdout, '', 'output from now on only: none');
  });

  test('a tty job: several readers see the same output; resize and signals; SSE and logs replay it', async () => {
    const job = await api.submit({ image, tty: true, openStdin: true, ttySize: { rows: 20, cols: 70 }, command: ['sh', '-c', 'stty size; trap "stty size" WINCH; trap "echo got-usr1; exit 4" USR1; while :; do sleep 0.05; done'] });
    const a = collect();
    const b = collect();
    const one = await attachJob(job.id, { baseUrl: stack.apiUrl, apiKey: KEY, logs: true, onOutput: a.onOutput });
    const two = await attachJob(job.id, { baseUrl: stack.apiUrl, apiKey: KEY, logs: true, onOutput: b.onOutput });
    await waitUntil(async () => a.out.stdout.includes('20 70') && b.out.stdout.includes('20 70'), 20_000, 'the initial size on both');
    one.resize(45, 150);
    await waitUntil(async () => b.out.stdout.includes('45 150'), 10_000, 'the resize seen by the other reader');
    two.signal('SIGUSR1');
    const end = await one.ended;
    await two.ended;
    assert.equal(end?.exitCode, 4);
    assert.match(a.out.stdout, /got-usr1/);
    const doc = await api.get(job.id, { output: true });
    assert.match(doc.output!.stdout, /20 70\r\n[\s\S]*45 150\r\n[\s\S]*got-usr1/, 'the job\'s output is in its record too');
    assert.deepEqual(doc.interactive, { openStdin: true, tty: true });
  });

  test('a tty without openStdin (docker run -t) gets its stdin and then EOF, with or without a line end; none is EOF at once', async () => {
    // Each command's exit code says whether it saw EOF; without it the job would end `timeout`.
    const limits = { timeoutMs: 20_000 };
    const partial = await api.run({ image, tty: true, stdin: 'no line end', command: ['cat'], limits });
    assert.equal(partial.status, 'succeeded', `${partial.status} ${JSON.stringify(partial.error)}`);
    assert.match(partial.output!.stdout, /no line end/);
    const lines = await api.run({ image, tty: true, stdin: 'one\ntwo\n', command: ['sh', '-c', 'n=0; while read l; do n=$((n+1)); done; exit $((40 + n))'], limits });
    assert.equal(lines.exitCode, 42, `${lines.status} ${JSON.stringify(lines.error)}: two lines, then EOF`);
    const none = await api.run({ image, tty: true, command: ['sh', '-c', 'read l; exit $((10 + $?))'], limits });
    assert.equal(none.exitCode, 11, `${none.status} ${JSON.stringify(none.error)}: read's status at EOF is 1`);
  });

  test('the idle limit ends an interactive job nobody is attached to', async () => {
    const job = await api.submit({ image, openStdin: true, command: ['sleep', '60'], limits: { idleTimeoutMs: 1500 } });
    const end = await api.wait(job.id, { timeoutMs: 30_000 });
    assert.equal(end.status, 'timeout');
    assert.equal(end.error?.code, 'idle_timeout');
    const bad = await api.request('POST', '/v1/jobs', { image, command: ['true'], limits: { idleTimeoutMs: 5000 } });
    assert.equal(bad.status, 400, 'idleTimeoutMs is for interactive jobs only');
  });

  test('an attached client keeps the job alive past its idle limit', async () => {
    const job = await api.submit({ image, openStdin: true, command: ['sh', '-c', 'sleep 3; echo done'], limits: { idleTimeoutMs: 1000 } });
    const c = collect();
    const att = await attachJob(job.id, { baseUrl: stack.apiUrl, apiKey: KEY, logs: true, onOutput: c.onOutput });
    const end = (await att.ended) as Job;
    assert.equal(end.status, 'succeeded', JSON.stringify(end.error));
    assert.equal(c.out.stdout, 'done\n');
  });

  test('an attached client whose input the job reads late keeps it alive: input under way is not idleness', async () => {
    // 256 KiB is more than the pipe holds: the worker's write waits for the job, and the frames
    // behind it (the client's heartbeats among them) wait too.
    const job = await api.submit({ image, openStdin: true, command: ['sh', '-c', 'sleep 4; wc -c; echo done'], limits: { idleTimeoutMs: 1000 } });
    const c = collect();
    const att = await attachJob(job.id, { baseUrl: stack.apiUrl, apiKey: KEY, logs: true, onOutput: c.onOutput });
    await att.write(Buffer.alloc(256 * 1024, 0x61));
    att.eof();
    const end = (await att.ended) as Job;
    assert.equal(end.status, 'succeeded', `before: timeout, idle_timeout after 1 s though attached all along: ${JSON.stringify(end.error)}`);
    assert.equal(c.out.stdout.trim().split(/\s+/).join(' '), '262144 done');
  });
});

describe('sbx run -it / -i / attach', () => {
  const env = () => ({ PATH: process.env.PATH!, HOME: tmp, SBX_HOST: stack.apiUrl, SBX_API_KEY: KEY });

  test('run -it IMAGE sh on a real terminal: echo, stty size, resize, Ctrl-C, exit code, terminal restored', async () => {
    const raw = execFileSync('python3', [PTY, process.execPath, SBX, image], { env: env(), timeout: 120_000 }).toString();
    const r = JSON.parse(raw.trim().split('\n').pop()!) as { steps: Record<string, string>; exit?: number; restored?: boolean; raw_while_running?: boolean };
    assert.equal(r.raw_while_running, true, raw);
    assert.match(r.steps.echo!, /echo hel''lo\r+\nhello\r+\n/, 'what is typed is echoed by the job\'s terminal, then run');
    assert.match(r.steps.size!, /33 101\r+\n$/, 'the job\'s terminal has our size');
    assert.match(r.steps.resized!, /41 123\r+\n$/, 'a window change reaches the job');
    assert.match(r.steps.interrupted!, /status=130/, 'Ctrl-C interrupted the sleep (SIGINT), not sbx');
    assert.match(r.steps.after_sigint ?? '', /still-here/, `a SIGINT sent to sbx from outside went to the job; sbx stayed: ${raw}`);
    assert.equal(r.exit, 3);
    assert.equal(r.restored, true, 'the terminal is back in cooked mode with echo');
  });

  test('run -it: ctrl-p ctrl-q detaches sbx (exit 0, terminal restored) and the job runs on; a ctrl-p not followed by ctrl-q reaches the job', async () => {
    const raw = execFileSync('python3', [PTY, process.execPath, SBX, image, 'detach'], { env: env(), timeout: 120_000 }).toString();
    const r = JSON.parse(raw.trim().split('\n').pop()!) as { steps: Record<string, string>; exit?: number; restored?: boolean; screen_at_exit?: string };
    assert.match(r.steps.passed ?? '', /\^Pa\r+\n/, `cat -v saw ctrl-p and a: ${raw}`);
    assert.equal(r.exit, 0, raw);
    assert.equal(r.restored, true, 'the terminal is back in cooked mode with echo');
    const id = /detached from job (j_[0-9A-Z]{26}), which runs on; `sbx attach \1` reattaches/.exec(r.screen_at_exit ?? '')?.[1];
    assert.ok(id, `the detach message names the job: ${JSON.stringify(r.screen_at_exit)}`);
    assert.equal((await api.get(id)).status, 'running', 'the job runs on after the client detached');
    const att = await attachJob(id, { baseUrl: stack.apiUrl, apiKey: KEY, onOutput: () => {} });
    await att.write('exit 5\r');
    assert.equal((await att.ended)?.exitCode, 5, 'reattached, it takes input and ends');

    const bad = await new Promise<{ code: number | null; err: string }>((res) => {
      const p = spawn(process.execPath, [SBX, 'run', '-it', '--detach-keys', 'ctrl-1', image, 'true'], { env: env() });
      let err = '';
      p.stderr.on('data', (d: Buffer) => (err += d.toString()));
      p.on('close', (code) => res({ code, err }));
    });
    assert.equal(bad.code, 125);
    assert.match(bad.err, /invalid argument for "--detach-keys" flag: invalid detach key "ctrl-1"/);
  });

  test('run on a terminal: while the job waits for a slot, one line says its place in the queue, erased when it runs', async () => {
    const admin = new SbxClient({ baseUrl: stack.apiUrl, apiKey: ADMIN });
    const slots = (await admin.workers()).reduce((n, w) => n + w.slots.total, 0);
    await admin.close();
    const blockers = await Promise.all(Array.from({ length: slots }, () => api.submit({ image, command: ['sleep', '4'] })));
    await waitUntil(async () => (await Promise.all(blockers.map((b) => api.get(b.id)))).every((d) => d.status === 'running'), 30_000, 'every slot taken');
    const raw = execFileSync('python3', [PTY, process.execPath, SBX, image, 'queued'], { env: env(), timeout: 120_000 }).toString();
    const r = JSON.parse(raw.trim().split('\n').pop()!) as { steps: Record<string, string>; exit?: number };
    assert.match(r.steps.queued ?? '', /\r\x1b\[Ksbx: queued, position 1$/, raw);
    assert.match(r.steps.ran ?? '', /\r\x1b\[Kran-after-queue\r+\n$/, `the line is erased before the job's output: ${raw}`);
    assert.equal(r.exit, 0);
    await Promise.all(blockers.map((b) => api.wait(b.id)));
  });

  test('run -i IMAGE wc -c < 256 MiB file: streamed with bounded memory', async () => {
    const file = join(tmp, 'big');
    await new Promise<void>((res, rej) => {
      const w = createWriteStream(file);
      const block = Buffer.alloc(1 << 20, 0x0a);
      let n = 0;
      const more = () => { while (n < 256) { n++; if (!w.write(block)) return void w.once('drain', more); } w.end(); };
      w.on('finish', res).on('error', rej);
      more();
    });
    // Python's os.wait4 gives the CLI's peak RSS.
    const code = `import os,sys,json,resource
pid=os.fork()
if pid==0:
  fd=os.open(sys.argv[1],os.O_RDONLY); os.dup2(fd,0)
  os.execv(sys.argv[2],[sys.argv[2],sys.argv[3],'run','--rm','-i',sys.argv[4],'wc','-l'])
_,st,ru=os.wait4(pid,0)
print(json.dumps({"exit":os.waitstatus_to_exitcode(st),"maxrss_kib":ru.ru_maxrss}))`;
    const started = Date.now();
    const out = await new Promise<string>((res, rej) => {
      const p = spawn('python3', ['-c', code, file, process.execPath, SBX, image], { env: env() });
      let s = '';
      p.stdout.on('data', (d: Buffer) => (s += d.toString()));
      p.stderr.on('data', (d: Buffer) => process.stderr.write(d));
      p.on('close', () => res(s)).on('error', rej);
    });
    const lines = out.trim().split('\n');
    const r = JSON.parse(lines.pop()!) as { exit: number; maxrss_kib: number };
    assert.equal(r.exit, 0, out);
    assert.equal(lines.join('\n').trim(), String(256 * 1024 * 1024 / (1 << 20) * (1 << 20)), 'every newline arrived');
    assert.ok(r.maxrss_kib < 200 * 1024, `the CLI's peak RSS (${r.maxrss_kib} KiB) stays far below the file's 256 MiB`);
    process.stderr.write(`# 256 MiB through sbx run -i in ${Date.now() - started} ms, CLI peak RSS ${Math.round(r.maxrss_kib / 1024)} MiB\n`);
  });

  test('sbx attach ID: output from now on, stdin to the job, its exit code', async () => {
    const job = await api.submit({ image, openStdin: true, command: ['sh', '-c', 'echo before; read a; echo "got $a"; exit 6'] });
    await waitUntil(async () => (await api.get(job.id)).status === 'running', 20_000, 'running');
    const r = await new Promise<{ code: number | null; out: string }>((res) => {
      const p = spawn(process.execPath, [SBX, 'attach', job.id], { env: env() });
      let out = '';
      p.stdout.on('data', (d: Buffer) => (out += d.toString()));
      p.stdin.end('typed\n');
      p.on('close', (code) => res({ code, out }));
    });
    assert.equal(r.code, 6);
    assert.match(r.out, /got typed/);
  });

  test('run -i without a terminal: Ctrl-C and SIGTERM go to the job\'s command (docker\'s --sig-proxy), and sbx exits with its code', async () => {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      const p = spawn(process.execPath, [SBX, 'run', '-i', image, 'sh', '-c', 'trap "echo got-$0; exit 5" INT TERM; echo ready; while :; do sleep 1; done'], { env: env() });
      let out = '';
      let err = '';
      p.stdout.on('data', (d: Buffer) => (out += d.toString()));
      p.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const closed = new Promise<number | null>((res) => p.on('close', (code) => res(code)));
      await waitUntil(async () => out.includes('ready\n'), 30_000, 'the job running');
      p.kill(signal);
      const code = await closed;
      p.stdin.destroy();
      assert.equal(code, 5, `${signal}: the trap's exit code (stderr: ${err})`);
      assert.match(out, /got-/, `${signal}: the job's trap ran`);
    }
  });

  test('run -i when the attach is refused (the tenant\'s streams used up): the API\'s reason, exit 125, and the job it submitted is cancelled', async () => {
    const one = new SbxClient({ baseUrl: stack.apiUrl, apiKey: ONE_STREAM });
    const holder = await one.submit({ image, command: ['sleep', '30'] });
    const held = new AbortController();
    const events = await fetch(`${stack.apiUrl}/v1/jobs/${holder.id}/events`, { headers: { authorization: `Bearer ${ONE_STREAM}` }, signal: held.signal });
    assert.equal(events.status, 200);
    try {
      const r = await new Promise<{ code: number | null; err: string }>((res) => {
        const p = spawn(process.execPath, [SBX, 'run', '-i', '-l', 'test=refused-attach', image, 'cat'], { env: { ...env(), SBX_API_KEY: ONE_STREAM } });
        let err = '';
        p.stderr.on('data', (d: Buffer) => (err += d.toString()));
        p.stdin.end();
        p.on('close', (code) => res({ code, err }));
      });
      assert.equal(r.code, 125, r.err);
      assert.match(r.err, /^sbx: Error response from the API: cannot attach to job j_\w+: .+ \(retry after \d+s\) \[rate_limited\]\n$/);
      const jobs: Job[] = [];
      for await (const j of one.listAll()) if (j.labels.test === 'refused-attach') jobs.push(j);
      assert.equal(jobs.length, 1);
      assert.equal((await one.wait(jobs[0]!.id, { timeoutMs: 20_000 })).status, 'cancelled', 'nobody could be on it: not left to its idle limit');
    } finally {
      held.abort();
      await one.cancel(holder.id).catch(() => {});
      await one.close();
    }
  });
});
