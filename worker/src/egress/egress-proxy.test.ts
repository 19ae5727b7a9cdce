// The jobs' egress proxy against real sockets: what it forwards, and every way a job could try to
// make it reach what is not public (the worker's Redis, its API, cloud metadata, private networks).
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { egressAllowList } from '../../../core/src/egress/egress-allow.ts';
import { parsePortSet } from '../../../core/src/egress/port-set.ts';
import { createLogger } from '../../../core/src/logger.ts';
import { MAX_PIPELINED, startEgressProxy, type EgressProxy } from './egress-proxy.ts';
import { JobEgressRules } from './job-egress-rules.ts';

const logger = createLogger('egress-proxy-test', 'silent');

/** An origin server on loopback that records what reached it. */
async function origin(): Promise<{ port: number; seen: http.IncomingMessage[]; bodies: string[]; connections: () => number; close: () => Promise<void> }> {
  const seen: http.IncomingMessage[] = [];
  const bodies: string[] = [];
  let connections = 0;
  const server = http.createServer((req, res) => {
    seen.push(req);
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      bodies.push(body);
      res.setHeader('connection', 'close, x-secret-hop');
      res.setHeader('x-secret-hop', 'dropped');
      res.end(`hello from origin ${req.method} ${req.url}\n`);
    });
  });
  server.on('connection', () => void connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port, seen, bodies, connections: () => connections,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

/** Writes `text` to the proxy and reads until it closes (or `untilHead`: the end of the response head). */
function exchange(port: number, text: string, untilHead = false): Promise<{ reply: string; socket: net.Socket }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(text));
    let reply = '';
    socket.on('data', (c) => {
      reply += c;
      if (untilHead && reply.includes('\r\n\r\n')) resolve({ reply, socket });
    });
    socket.on('end', () => resolve({ reply, socket }));
    socket.on('error', reject);
  });
}

const statusOf = (reply: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(reply)?.[1]);

describe('egress proxy', () => {
  let allowed: Awaited<ReturnType<typeof origin>>;
  let forbidden: Awaited<ReturnType<typeof origin>>; // stands for the worker's Redis, its API: loopback, not allow-listed
  const proxies: EgressProxy[] = [];
  const proxy = async (opts: { ports?: string; hosts?: string[]; maxConnections?: number } = {}) => {
    const rules = new JobEgressRules({ allow: egressAllowList(`127.0.0.1:${allowed.port}`), ports: parsePortSet(opts.ports ?? '*')!, maxConnections: opts.maxConnections ?? 64 }, opts.hosts);
    const p = await startEgressProxy({ host: '127.0.0.1', port: 0 }, rules, { jobId: 'j1', logger });
    proxies.push(p);
    return { p, port: p.address().port };
  };
  before(async () => {
    allowed = await origin();
    forbidden = await origin();
  });
  after(async () => {
    for (const p of proxies) await p.close();
    await allowed.close();
    await forbidden.close();
  });

  it('tunnels a CONNECT to an allowed destination and counts its bytes', async () => {
    const { p, port } = await proxy();
    const { reply, socket } = await exchange(port, `CONNECT 127.0.0.1:${allowed.port} HTTP/1.1\r\nHost: 127.0.0.1:${allowed.port}\r\n\r\n`, true);
    assert.equal(statusOf(reply), 200);
    const answer = await new Promise<string>((resolve) => {
      let got = '';
      socket.on('data', (c) => (got += c));
      socket.on('end', () => resolve(got));
      socket.write('GET /through-tunnel HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    });
    assert.match(answer, /hello from origin GET \/through-tunnel/);
    const usage = await p.close();
    assert.equal(usage.connections, 1);
    assert.equal(usage.refused, 0);
    assert.ok(usage.bytesSent >= 50 && usage.bytesReceived > answer.length - 10, JSON.stringify(usage));
  });

  it('forwards an absolute-form http:// request with its body, without hop-by-hop or proxy headers either way', async () => {
    const { port } = await proxy();
    const before = allowed.seen.length;
    const { reply } = await exchange(port, `POST http://127.0.0.1:${allowed.port}/upload?x=1 HTTP/1.1\r\nHost: 127.0.0.1:${allowed.port}\r\nProxy-Authorization: Basic c2VjcmV0\r\nProxy-Connection: keep-alive\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello`);
    assert.equal(statusOf(reply), 200);
    assert.match(reply, /hello from origin POST \/upload\?x=1/);
    assert.doesNotMatch(reply, /x-secret-hop: dropped/i, 'a header the origin\'s Connection names is not passed on');
    const req = allowed.seen[before]!;
    assert.equal(req.headers['proxy-authorization'], undefined);
    assert.equal(req.headers['proxy-connection'], undefined);
    assert.equal(allowed.bodies[before], 'hello');
  });

  it('refuses loopback, private, link-local and other non-public destinations however they are spelt, before connecting', async () => {
    const { p, port } = await proxy();
    const q = forbidden.port;
    const authorities = [
      `127.0.0.1:${q}`, `localhost:${q}`, `LOCALHOST.:${q}`, `[::1]:${q}`, `[::ffff:127.0.0.1]:${q}`, `2130706433:${q}`, `0x7f000001:${q}`, `0177.0.0.1:${q}`,
      `0.0.0.0:${q}`, `127.1:${q}`, '169.254.169.254:80', '10.0.0.1:80', '192.168.1.1:443', '100.64.0.1:80', '[fd00::1]:443', '[fe80::1]:80', '224.0.0.1:80',
    ];
    for (const a of authorities) {
      const { reply } = await exchange(port, `CONNECT ${a} HTTP/1.1\r\nHost: ${a}\r\n\r\n`);
      const plain = await exchange(port, `GET http://${a}/ HTTP/1.1\r\nHost: ${a}\r\nConnection: close\r\n\r\n`);
      for (const [how, r] of [['CONNECT', reply], ['GET', plain.reply]] as const) {
        if (a.startsWith('LOCALHOST.') && statusOf(r) === 502) { // the resolver may not know the rooted form at all
          assert.match(r, /could not resolve localhost\./i);
          continue;
        }
        assert.equal(statusOf(r), 403, `${how} ${a}: ${r}`);
        assert.match(r, /sbx egress proxy: refused .*(not a public address|no public address)/, a);
      }
    }
    assert.equal(forbidden.connections(), 0, 'nothing reached the loopback service');
    const usage = await p.close();
    assert.equal(usage.connections, 0);
    assert.ok(usage.refused >= (authorities.length - 1) * 2, `${usage.refused} refused`);
    assert.equal(usage.refusals.length, 20, 'the first 20 are kept');
    assert.deepEqual(usage.refusals[0], { host: '127.0.0.1', port: q, reason: '127.0.0.1 is not a public address' });
  });

  it('refuses ports the server does not open, hosts outside the job\'s egressHosts, and what is not a proxy request', async () => {
    const ports = await proxy({ ports: '80,443' });
    const r1 = await exchange(ports.port, `CONNECT 127.0.0.1:${allowed.port} HTTP/1.1\r\n\r\n`);
    assert.equal(statusOf(r1.reply), 403);
    assert.match(r1.reply, new RegExp(`port ${allowed.port} is not open to jobs \\(this server's SBX_JOB_EGRESS_PORTS: 80,443\\)`));
    const hosts = await proxy({ hosts: ['pypi.org', '*.pythonhosted.org'] });
    for (const a of [`127.0.0.1:${allowed.port}`, 'example.com:443', 'pythonhosted.org:443', 'evilpypi.org:443']) {
      const r = await exchange(hosts.port, `CONNECT ${a} HTTP/1.1\r\n\r\n`);
      assert.equal(statusOf(r.reply), 403, a);
      assert.match(r.reply, /is not one of the job's egressHosts/, a);
    }
    const origin = await exchange(hosts.port, 'GET / HTTP/1.1\r\nHost: 127.0.0.1:3128\r\nConnection: close\r\n\r\n');
    assert.equal(statusOf(origin.reply), 400);
    assert.match(origin.reply, /this is an HTTP proxy/);
    const noPort = await exchange(hosts.port, 'CONNECT pypi.org HTTP/1.1\r\n\r\n');
    assert.equal(statusOf(noPort.reply), 400);
    assert.equal(allowed.connections() > 0, true);
  });

  it('holds a job to its connections at once (429 past them) and close() ends the open tunnels', async () => {
    const { p, port } = await proxy({ maxConnections: 2 });
    const originBefore = allowed.connections();
    const open = await Promise.all([0, 1].map(() => exchange(port, `CONNECT 127.0.0.1:${allowed.port} HTTP/1.1\r\n\r\n`, true)));
    assert.deepEqual(open.map((o) => statusOf(o.reply)), [200, 200]);
    const third = await exchange(port, `CONNECT 127.0.0.1:${allowed.port} HTTP/1.1\r\n\r\n`);
    assert.equal(statusOf(third.reply), 429);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(allowed.connections() - originBefore, 2, 'the CONNECT sent on the turned-away connection went nowhere');
    const ended = open.map((o) => new Promise((r) => o.socket.once('close', r)));
    const usage = await p.close();
    await Promise.all(ended);
    assert.equal(usage.connections, 2);
    assert.equal(usage.refused, 1);
    await assert.rejects(new Promise((resolve, reject) => net.connect(port, '127.0.0.1').on('connect', resolve).on('error', reject)), /ECONNREFUSED/);
  });
});

describe('egress proxy under resets', () => {
  it('a destination or a job resetting mid-transfer ends that exchange, not the worker', async () => {
    // The "destination" answers half a response and resets; a second one never answers.
    const rude = net.createServer((s) => s.once('data', () => { s.write('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial'); setTimeout(() => s.resetAndDestroy(), 20); }));
    const mute = net.createServer((s) => s.resume()); // reads, never answers
    await Promise.all([rude, mute].map((srv) => new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))));
    const [rudePort, mutePort] = [rude, mute].map((srv) => (srv.address() as net.AddressInfo).port);
    const rules = new JobEgressRules({ allow: egressAllowList(`127.0.0.1:${rudePort}`, `127.0.0.1:${mutePort}`), ports: parsePortSet('*')!, maxConnections: 64 });
    const p = await startEgressProxy({ host: '127.0.0.1', port: 0 }, rules, { jobId: 'j2', logger, connectTimeoutMs: 500 });
    const port = p.address().port;
    const plain = await exchange(port, `GET http://127.0.0.1:${rudePort}/ HTTP/1.1\r\nHost: x\r\n\r\n`).catch((e: Error) => ({ reply: e.message }));
    assert.match(plain.reply, /partial|ECONNRESET/, 'the job sees the partial answer cut off');
    const tunnel = await exchange(port, `CONNECT 127.0.0.1:${rudePort} HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n`).catch((e: Error) => ({ reply: e.message }));
    assert.match(tunnel.reply, /200 Connection established[\s\S]*partial|ECONNRESET/);
    // The job resets its own end while the destination has not answered, by either route.
    for (const text of [`GET http://127.0.0.1:${mutePort}/ HTTP/1.1\r\nHost: x\r\n\r\n`, `CONNECT 127.0.0.1:${mutePort} HTTP/1.1\r\n\r\n`]) {
      const s = net.connect(port, '127.0.0.1', () => s.write(text));
      s.on('error', () => {});
      await new Promise((r) => setTimeout(r, 50));
      s.resetAndDestroy();
    }
    await new Promise((r) => setTimeout(r, 100));
    // Still serving: a request after all that is answered.
    const after = await exchange(port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.equal(statusOf(after.reply), 400);
    await p.close();
    await Promise.all([rude, mute].map((srv) => new Promise((r) => srv.close(r))));

  });
});

describe('egress proxy and malformed answers', () => {
  it('an answer that cannot be passed on (a control character in its status text or a header) is a 502 to that request only', async () => {
    const answers = ['HTTP/1.1 200 O\x7fK\r\nContent-Length: 2\r\n\r\nok', 'HTTP/1.1 200 OK\r\nX-A: a\x01b\r\nContent-Length: 2\r\n\r\nok', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'];
    let next = 0;
    const odd = net.createServer((s) => s.once('data', () => s.end(Buffer.from(answers[next++]!, 'latin1'))));
    await new Promise<void>((r) => odd.listen(0, '127.0.0.1', r));
    const oddPort = (odd.address() as net.AddressInfo).port;
    const rules = new JobEgressRules({ allow: egressAllowList(`127.0.0.1:${oddPort}`), ports: parsePortSet('*')!, maxConnections: 64 });
    const p = await startEgressProxy({ host: '127.0.0.1', port: 0 }, rules, { jobId: 'j3', logger });
    const statuses: number[] = [];
    for (let i = 0; i < answers.length; i++) {
      const { reply } = await exchange(p.address().port, `GET http://127.0.0.1:${oddPort}/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      statuses.push(statusOf(reply));
    }
    assert.deepEqual(statuses, [502, 502, 200]);
    await p.close();
    await new Promise((r) => odd.close(r));
  });
});

describe('egress proxy budget', () => {
  it('past its bytes a job\'s connections are cut and new ones refused, by either route', async () => {
    const big = http.createServer((_req, res) => res.end(Buffer.alloc(200_000, 0x62)));
    await new Promise<void>((r) => big.listen(0, '127.0.0.1', r));
    const bigPort = (big.address() as net.AddressInfo).port;
    const rules = new JobEgressRules({ allow: egressAllowList(`127.0.0.1:${bigPort}`), ports: parsePortSet('*')!, maxConnections: 64, maxBytes: 50_000 });
    const p = await startEgressProxy({ host: '127.0.0.1', port: 0 }, rules, { jobId: 'j4', logger });
    const port = p.address().port;
    const first = await exchange(port, `GET http://127.0.0.1:${bigPort}/ HTTP/1.1\r\nHost: x\r\n\r\n`).catch((e: Error) => ({ reply: e.message }));
    assert.ok(first.reply.length < 200_000, `cut short: ${first.reply.length} bytes reached the job`);
    const next = await exchange(port, `CONNECT 127.0.0.1:${bigPort} HTTP/1.1\r\n\r\n`);
    assert.equal(statusOf(next.reply), 403);
    assert.match(next.reply, /this job's egress budget of 50000 bytes is used up \(SBX_JOB_EGRESS_BYTES\)/);
    const usage = await p.close();
    assert.equal(usage.limitReached, true);
    assert.ok(usage.bytesReceived > 50_000 && usage.bytesReceived < 200_000, JSON.stringify(usage));
    await new Promise((r) => { big.closeAllConnections(); big.close(r); });
  });
});

describe('egress proxy refusals', () => {
  it('past maxRefusals refused requests the proxy stops listening: later connections are refused by the kernel, not answered by the worker', async () => {
    const rules = new JobEgressRules({ allow: egressAllowList(''), ports: parsePortSet('*')!, maxConnections: 64, maxRefusals: 5 });
    const p = await startEgressProxy({ host: '127.0.0.1', port: 0 }, rules, { jobId: 'j5', logger });
    const port = p.address().port;
    const outcomes: string[] = [];
    for (let i = 0; i < 20; i++) {
      const got = await exchange(port, 'GET http://10.0.0.1/ HTTP/1.1\r\nHost: 10.0.0.1\r\n\r\n').then((r) => String(statusOf(r.reply)), (e: NodeJS.ErrnoException) => e.code ?? e.message);
      outcomes.push(got);
    }
    const usage = await p.close();
    assert.deepEqual(outcomes, [...Array(6).fill('403'), ...Array(14).fill('ECONNREFUSED')], `what 20 refused requests got: ${outcomes.join(' ')}`);
    assert.equal(usage.refused, 6);
    assert.equal(usage.refusalsLimitReached, true);
  });
});

/** A DNS server on loopback answering A queries from `names` (AAAA and other names: no records). */
async function dnsServer(names: Record<string, string>): Promise<{ port: number; close: () => void }> {
  const { createSocket } = await import('node:dgram');
  const sock = createSocket('udp4');
  sock.on('message', (q, from) => {
    let i = 12;
    const labels: string[] = [];
    while (q[i]! > 0) {
      labels.push(q.subarray(i + 1, i + 1 + q[i]!).toString());
      i += q[i]! + 1;
    }
    const question = q.subarray(12, i + 5);
    const type = q.readUInt16BE(i + 1);
    const address = type === 1 ? names[labels.join('.').toLowerCase()] : undefined;
    const header = Buffer.alloc(12);
    q.copy(header, 0, 0, 2);
    header.writeUInt16BE(0x8180, 2);
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(address ? 1 : 0, 6);
    const answer = address ? Buffer.concat([Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]), Buffer.from(address.split('.').map(Number))]) : Buffer.alloc(0);
    sock.send(Buffer.concat([header, question, answer]), from.port, from.address);
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  return { port: sock.address().port, close: () => sock.close() };
}

describe('egress proxy name resolution', () => {
  it('resolves by DNS off the thread pool (a pool held by blocked file reads does not hold it up), and judges what the answer names', async () => {
    const { mkdtempSync, rmSync, writeFileSync, promises: fsp } = await import('node:fs');
    const { execFileSync } = await import('node:child_process');
    const { Resolver } = await import('node:dns');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const target = await origin();
    const dns = await dnsServer({ 'origin.test': '127.0.0.1', 'internal.test': '10.0.0.7' });
    const resolver = new Resolver({ timeout: 1000, tries: 1 });
    resolver.setServers([`127.0.0.1:${dns.port}`]);
    const rules = new JobEgressRules({ allow: egressAllowList(`127.0.0.1:${target.port}`), ports: parsePortSet('*')!, maxConnections: 64 });
    const { dnsOnlyResolve } = await import('./job-dns.ts');
    const p = await startEgressProxy({ host: '127.0.0.1', port: 0 }, rules, { jobId: 'j5', logger, resolve: dnsOnlyResolve(resolver) });
    // Hold every thread of libuv's pool in open(2) of a FIFO nobody writes.
    const dir = mkdtempSync(join(tmpdir(), 'sbx-egress-dns-'));
    const fifos = Array.from({ length: Number(process.env.UV_THREADPOOL_SIZE ?? 4) }, (_, i) => join(dir, `f${i}`));
    for (const f of fifos) execFileSync('mkfifo', [f]);
    const held = fifos.map((f) => fsp.readFile(f));
    try {
      const stalled = await Promise.race([fsp.stat(dir).then(() => 'answered'), new Promise((r) => setTimeout(() => r('stalled'), 300))]);
      assert.equal(stalled, 'stalled', 'control: the pool is held (a file system call waits)');
      const through = await Promise.race([
        exchange(p.address().port, `CONNECT origin.test:${target.port} HTTP/1.1\r\n\r\nGET /by-name HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no answer in 5 s: the name was resolved on the held thread pool')), 5000)),
      ]);
      assert.match(through.reply, /200 Connection established[\s\S]*hello from origin GET \/by-name/);
      const internal = await exchange(p.address().port, `CONNECT internal.test:443 HTTP/1.1\r\n\r\n`);
      assert.equal(statusOf(internal.reply), 403);
      assert.match(internal.reply, /refused internal\.test:443: internal\.test has no public address/);
      const local = await exchange(p.address().port, `CONNECT db.localhost:6379 HTTP/1.1\r\n\r\n`);
      assert.equal(statusOf(local.reply), 403, 'names under localhost are loopback, asked of no server');
    } finally {
      for (const f of fifos) writeFileSync(f, ''); // a writer at last: each open returns, each read ends
      await Promise.all(held);
      rmSync(dir, { recursive: true, force: true });
      await p.close();
      dns.close();
      await target.close();
    }
  });
});

describe('egress proxy and names that do not resolve', () => {
  it('a name with no records, or a DNS server that refuses, is a 502 "could not resolve", not a refused connection', async () => {
    const { Resolver } = await import('node:dns');
    const { dnsOnlyResolve } = await import('./job-dns.ts');
    const dns = await dnsServer({});
    const answering = new Resolver({ timeout: 500, tries: 1 });
    answering.setServers([`127.0.0.1:${dns.port}`]);
    const closed = new Resolver({ timeout: 500, tries: 1 });
    closed.setServers(['127.0.0.1:1']); // nothing listens: ECONNREFUSED from the DNS query itself
    const rules = new JobEgressRules({ allow: [], ports: parsePortSet('*')!, maxConnections: 64 });
    for (const resolver of [answering, closed]) {
      const p = await startEgressProxy({ host: '127.0.0.1', port: 0 }, rules, { jobId: 'j6', logger, resolve: dnsOnlyResolve(resolver) });
      const r = await exchange(p.address().port, 'CONNECT nowhere.test:443 HTTP/1.1\r\n\r\n');
      assert.equal(statusOf(r.reply), 502);
      assert.match(r.reply, /sbx egress proxy: could not resolve nowhere\.test/);
      await p.close();
    }
    dns.close();
  });
});

describe('egress proxy and pipelined requests', () => {
  const serve = (server: net.Server) => new Promise<number>((r) => server.listen(0, '127.0.0.1', () => r((server.address() as net.AddressInfo).port)));
  const pipelined = (port: number, n: number, text: (i: number) => string) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(Array.from({ length: n }, (_, i) => text(i)).join('')));
    let reply = '';
    s.on('data', (c) => (reply += c));
    s.on('error', () => {});
    return { socket: s, reply: () => reply };
  };
  /** Resolves once `done()` holds, or after `ms` (a bounded wait, not a timing assertion). */
  const until = async (done: () => boolean, ms: number) => {
    for (const end = Date.now() + ms; !done() && Date.now() < end;) await new Promise((r) => setTimeout(r, 20));
  };

  it('requests pipelined on a client connection open at most maxConnections connections out (a destination that never answers)', async () => {
    const accepted: net.Socket[] = [];
    const mute = net.createServer((s) => { accepted.push(s); s.on('error', () => {}); s.resume(); });
    const mutePort = await serve(mute);
    const rules = new JobEgressRules({ allow: egressAllowList(`127.0.0.1:${mutePort}`), ports: parsePortSet('*')!, maxConnections: 2 });
    const p = await startEgressProxy({ host: '127.0.0.1', port: 0 }, rules, { jobId: 'j7', logger });
    const jobs = [0, 1].map(() => pipelined(p.address().port, 500, (i) => `GET http://127.0.0.1:${mutePort}/${i} HTTP/1.1\r\nHost: x\r\n\r\n`));
    // Until more than 2 connections arrive (the defect), or 1 s (their 429s wait behind answers that never come).
    await until(() => accepted.length > 2, 1000);
    assert.ok(accepted.length <= 2, `${accepted.length} connections reached the destination (maxConnections 2)`);
    const usage = await p.close();
    assert.ok(usage.connections <= 2, JSON.stringify(usage.connections));
    assert.ok(usage.refusals.some((r) => r.reason === `more than ${MAX_PIPELINED} requests pipelined on one connection`), 'the requests were read, and turned away');
    for (const j of jobs) j.socket.destroy();
    for (const s of accepted) s.destroy();
    await new Promise((r) => mute.close(r));
  });

  it('pipelined requests are answered one after another, in order, on one connection', async () => {
    let connections = 0;
    const counting = http.createServer((req, res) => res.end(`answer to ${req.url}\n`));
    counting.on('connection', () => void connections++);
    const port = await serve(counting);
    const rules = new JobEgressRules({ allow: egressAllowList(`127.0.0.1:${port}`), ports: parsePortSet('*')!, maxConnections: 2 });
    const p = await startEgressProxy({ host: '127.0.0.1', port: 0 }, rules, { jobId: 'j8', logger });
    const job = pipelined(p.address().port, 6, (i) => `GET http://127.0.0.1:${port}/${i} HTTP/1.1\r\nHost: x\r\n${i === 5 ? 'Connection: close\r\n' : ''}\r\n`);
    await new Promise((r) => job.socket.once('close', r));
    assert.deepEqual([...job.reply().matchAll(/answer to \/(\d)/g)].map((m) => Number(m[1])), [0, 1, 2, 3, 4, 5]);
    assert.equal(connections, 6, 'each on a connection of its own');
    await p.close();
    await new Promise((r) => { counting.closeAllConnections(); counting.close(r); });
  });

  it('a job that does not read its answers holds up the destination: nothing piles up in the worker', async () => {
    const chunk = Buffer.alloc(65536, 0x61);
    let written = 0;
    let accepted = 0;
    const endless = net.createServer((s) => {
      accepted++;
      s.on('error', () => {});
      s.once('data', () => {
        s.write('HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\n');
        const pump = () => { while (!s.destroyed) { written += chunk.length; if (!s.write(chunk)) return void s.once('drain', pump); } };
        pump();
      });
    });
    const port = await serve(endless);
    const rules = new JobEgressRules({ allow: egressAllowList(`127.0.0.1:${port}`), ports: parsePortSet('*')!, maxConnections: 4, maxBytes: null });
    const p = await startEgressProxy({ host: '127.0.0.1', port: 0 }, rules, { jobId: 'j9', logger });
    const job = net.connect(p.address().port, '127.0.0.1');
    job.on('error', () => {});
    job.pause(); // never reads
    job.write(`GET http://127.0.0.1:${port}/ HTTP/1.1\r\nHost: x\r\n\r\n`.repeat(100));
    // Until the destination has been stalled for a while (or 3 s), with a bound far below 100 answers' worth.
    let last = -1;
    await until(() => { const stalled = written === last; last = written; return stalled && written > 0; }, 3000);
    await until(() => false, 200);
    assert.ok(written < 64 * 2 ** 20, `${(written / 2 ** 20).toFixed(0)} MiB written by a destination the job does not read, on ${accepted} connections`);
    assert.equal(accepted, 1, 'one connection out for one client connection');
    await p.close();
    job.destroy();
    await new Promise((r) => endless.close(r));
  });
});

describe('egress proxy budget and headers', () => {
  it('request and response heads count against the bytes a job may move', async () => {
    let seen = 0;
    const heady = http.createServer((_req, res) => { seen++; res.setHeader('x-pad', 'p'.repeat(4000)); res.end(); });
    await new Promise<void>((r) => heady.listen(0, '127.0.0.1', r));
    const port = (heady.address() as net.AddressInfo).port;
    const rules = new JobEgressRules({ allow: egressAllowList(`127.0.0.1:${port}`), ports: parsePortSet('*')!, maxConnections: 64, maxBytes: 20_000 });
    const p = await startEgressProxy({ host: '127.0.0.1', port: 0 }, rules, { jobId: 'j10', logger });
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await exchange(p.address().port, `GET http://127.0.0.1:${port}/ HTTP/1.1\r\nHost: x\r\nX-Pad: ${'q'.repeat(4000)}\r\nConnection: close\r\n\r\n`).catch(() => ({ reply: '' }));
      statuses.push(statusOf(r.reply));
    }
    const usage = await p.close();
    assert.equal(usage.limitReached, true, JSON.stringify({ ...usage, statuses }));
    assert.ok(seen <= 3, `${seen} requests of 8 KB reached the destination through a 20,000-byte budget`);
    assert.ok(usage.bytesSent > 8000 && usage.bytesReceived > 8000, JSON.stringify(usage));
    assert.equal(statuses.at(-1), 403);
    await new Promise((r) => { heady.closeAllConnections(); heady.close(r); });
  });
});

describe('egress proxy and Host', () => {
  it('sends Host from the URL (not the job\'s: no domain fronting), keeps Host and Content-Length whatever Connection names, adds Host to HTTP/1.0', async () => {
    const seen: Array<{ host?: string; length?: string; body: string }> = [];
    const echo = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => { seen.push({ host: req.headers.host, length: req.headers['content-length'], body }); res.end('ok'); });
    });
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    const port = (echo.address() as net.AddressInfo).port;
    const rules = new JobEgressRules({ allow: egressAllowList(`127.0.0.1:${port}`), ports: parsePortSet('*')!, maxConnections: 64 });
    const p = await startEgressProxy({ host: '127.0.0.1', port: 0 }, rules, { jobId: 'j11', logger });
    const fronted = await exchange(p.address().port, `GET http://127.0.0.1:${port}/a HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n`);
    const named = await exchange(p.address().port, `GET http://127.0.0.1:${port}/b HTTP/1.1\r\nHost: evil.example\r\nConnection: host, content-length, close\r\nContent-Length: 5\r\n\r\nhello`);
    const old = await exchange(p.address().port, `GET http://127.0.0.1:${port}/c HTTP/1.0\r\n\r\n`);
    assert.deepEqual([fronted, named].map((r) => statusOf(r.reply)), [200, 200]);
    assert.match(old.reply, /^HTTP\/1\.[01] 200/);
    assert.deepEqual(seen, [
      { host: `127.0.0.1:${port}`, length: undefined, body: '' },
      { host: `127.0.0.1:${port}`, length: '5', body: 'hello' },
      { host: `127.0.0.1:${port}`, length: undefined, body: '' },
    ]);
    await p.close();
    await new Promise((r) => { echo.closeAllConnections(); echo.close(r); });
  });
});

describe('egress proxy and the worker host\'s own addresses', () => {
  it('refuses an address of one of the host\'s interfaces though it is public, by literal and by name', async () => {
    const { hostAddresses } = await import('../../../core/src/egress/host-addresses.ts');
    const own = hostAddresses(() => ({ lo: [{ address: '127.0.0.1' }], eth0: [{ address: '93.184.215.14' }, { address: '2606:2800:21f:cb07:6820:80da:af6b:8b2c' }] }));
    const rules = new JobEgressRules({ allow: [], ports: parsePortSet('*')!, maxConnections: 64, ownAddresses: own });
    const resolve: import('../../../core/src/egress/bounded-lookup.ts').LookupAll = (_name, _o, cb) => queueMicrotask(() => cb(null, [{ address: '93.184.215.14', family: 4 }]));
    const p = await startEgressProxy({ host: '127.0.0.1', port: 0 }, rules, { jobId: 'j12', logger, resolve, connectTimeoutMs: 500 });
    const literal = await exchange(p.address().port, 'CONNECT 93.184.215.14:443 HTTP/1.1\r\n\r\n');
    assert.equal(statusOf(literal.reply), 403);
    assert.match(literal.reply, /refused 93\.184\.215\.14:443: 93\.184\.215\.14 is this worker host's own address/);
    for (const a of ['[2606:2800:21f:cb07:6820:80da:af6b:8b2c]:80', '[::ffff:93.184.215.14]:80']) {
      const r = await exchange(p.address().port, `GET http://${a}/ HTTP/1.1\r\nHost: ${a}\r\nConnection: close\r\n\r\n`);
      assert.equal(statusOf(r.reply), 403, a);
    }
    const byName = await exchange(p.address().port, 'CONNECT worker.example:443 HTTP/1.1\r\n\r\n');
    assert.equal(statusOf(byName.reply), 403);
    assert.match(byName.reply, /worker\.example has no public address .*the worker host's own/);
    const usage = await p.close();
    assert.equal(usage.connections, 0);
    // SBX_JOB_EGRESS_ALLOW naming it lets it through.
    const allowing = new JobEgressRules({ allow: egressAllowList('93.184.215.14:443'), ports: parsePortSet('*')!, maxConnections: 64, ownAddresses: own });
    assert.equal(allowing.precheck('93.184.215.14', 443), null);
    assert.match(allowing.precheck('93.184.215.14', 80) ?? '', /own address/);
  });
});
