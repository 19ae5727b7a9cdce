/**
 * A network "egress" job's only way out: an HTTP proxy the worker serves on a socket listening at
 * 127.0.0.1:3128 inside the job's own network namespace (LaunchSpec.listenPort), so only that job
 * can reach it. The job's namespace has nothing but loopback; every connection out is made here,
 * by the worker, after JobEgressRules has judged it:
 *
 * - `CONNECT host:port` (HTTPS, and anything else a client tunnels) and absolute-form plain-HTTP
 *   requests (`GET http://host/path`); anything else is a 400 that says how to use the proxy;
 * - a name is resolved once, here (by DNS through c-ares, off the thread pool the worker's file
 *   system calls use: job-dns.ts), and only the addresses the policy allows are connected to (no
 *   second lookup for a rebinding DNS answer to change); the connected socket's address is checked
 *   again;
 * - a refusal is a 403 whose body says why (curl, pip and git print it), counted, and the first ones
 *   are kept for the job's document (`egress.refusals`);
 * - at most `maxConnections` client connections at once (more get a 429), and as many connections
 *   out: the plain-HTTP requests one client connection pipelines are forwarded one at a time (each
 *   on a connection of its own, the next once the last one's is closed), at most
 *   MAX_PIPELINED waiting behind it (more get a 429); connecting times out after
 *   `connectTimeoutMs` (504);
 * - bytes are piped with backpressure both ways: a job that does not read holds up its
 *   destination, nothing piles up here;
 * - plain HTTP is sent with `Host` from the request's URL, whatever Host the job sent (RFC 9112
 *   §3.2.2: the host judged is the host asked), and a Connection header cannot drop Host,
 *   Content-Length or Transfer-Encoding;
 * - past `maxBytes` moved both ways together (request and response heads included; at most one
 *   read more), every connection is cut and new ones are refused (`egress.limitReached`);
 * - past `maxRefusals` refused requests the proxy stops listening and cuts every connection: later
 *   connections are refused by the job's own network namespace, at no cost to the worker
 *   (`egress.refusalsLimitReached`). Each refusal costs the worker's event loop a connection, a parse
 *   and an answer, and the job next to nothing: a job of `cpus: 0.2` looping `yes | nc` on refused
 *   requests used 0.67 s of CPU in 10 s and made the worker spend 7.2 s (232,442 refusals), slowing
 *   every other job of that worker (their output, its heartbeat).
 *
 * close() ends every connection and closes the listener, which lets the job's namespace go.
 */
import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { guardedLookup } from '../../../core/src/egress/guarded-connector.ts';
import { bareAddress, parseIp } from '../../../core/src/egress/ip-address.ts';
import type { EgressUsage } from '../../../core/src/job-spec.ts';
import type { Logger } from '../../../core/src/logger.ts';
import type { JobEgressRules } from './job-egress-rules.ts';
import { dnsOnlyResolve } from './job-dns.ts';
import type { LookupAll } from '../../../core/src/egress/bounded-lookup.ts';

/** Where the proxy listens inside a job (HTTP_PROXY=http://127.0.0.1:3128). */
export const EGRESS_PROXY_PORT = 3128;
/** What a network "egress" job's environment says (the request's env may override each). */
export const EGRESS_PROXY_ENV: Readonly<Record<string, string>> = {
  HTTP_PROXY: `http://127.0.0.1:${EGRESS_PROXY_PORT}`,
  HTTPS_PROXY: `http://127.0.0.1:${EGRESS_PROXY_PORT}`,
  http_proxy: `http://127.0.0.1:${EGRESS_PROXY_PORT}`,
  https_proxy: `http://127.0.0.1:${EGRESS_PROXY_PORT}`,
  NO_PROXY: 'localhost,127.0.0.1,::1',
  no_proxy: 'localhost,127.0.0.1,::1',
  // Node.js (22.21+, 24+) follows the variables above for fetch() and http only when asked.
  NODE_USE_ENV_PROXY: '1',
};
const MAX_REFUSALS_KEPT = 20;
/** Plain-HTTP requests one client connection may have waiting behind the one being forwarded. */
export const MAX_PIPELINED = 16;
const CONNECT_TIMEOUT_MS = 10_000;
/** Hop-by-hop headers (RFC 9110 §7.6.1) and the proxy's own: never forwarded either way. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'proxy-authenticate', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

export interface EgressProxyOptions {
  jobId: string;
  logger: Logger;
  connectTimeoutMs?: number;
  /** How names are resolved (default: DNS through c-ares, job-dns.ts). */
  resolve?: LookupAll;
}

export interface EgressProxy {
  /** Where it listens (tests listen on a port of their own instead of a job's fd). */
  address(): net.AddressInfo;
  /** Ends every connection, closes the listener; what went through it (the same answer when called again). */
  close(): Promise<EgressUsage>;
}

interface Target {
  host: string;
  port: number;
}

/**
 * `host:port` of a CONNECT (port required, no user info), or null. The host as a URL parser reads
 * it, so every spelling of an address ('0x7f000001', '127.1', '0177.0.0.1') is judged as the
 * address it is.
 */
function connectTarget(authority: string | undefined): Target | null {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^:[\]@/?#\s]+):([0-9]{1,5})$/.exec(authority ?? '');
  const port = Number(m?.[2]);
  if (!m || port < 1 || port > 65535 || !URL.canParse(`http://${m[1]}/`)) return null;
  return { host: new URL(`http://${m[1]}/`).hostname, port };
}

/** What a Connection header may not name for removal: the message's framing and Host (RFC 9112 §3.2.2, §6). */
const NOT_HOP_BY_HOP = new Set(['host', 'content-length', 'transfer-encoding']);

/** Headers to forward: everything but hop-by-hop ones and those the Connection header names (not framing or Host). */
function forwardable(headers: http.IncomingHttpHeaders): http.OutgoingHttpHeaders {
  const named = new Set(String(headers.connection ?? '').toLowerCase().split(',').map((h) => h.trim()).filter((h) => h && !NOT_HOP_BY_HOP.has(h)));
  const out: http.OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined && !HOP_BY_HOP.has(k) && !named.has(k)) out[k] = v;
  return out;
}

/** The bytes of a request head as sent: request line, each header line, the empty line. */
function headBytes(method: string, path: string, headers: http.OutgoingHttpHeaders): number {
  let n = method.length + path.length + 13; // "M P HTTP/1.1\r\n" + "\r\n"
  for (const [k, v] of Object.entries(headers)) {
    for (const one of Array.isArray(v) ? v : [v]) n += k.length + 4 + Buffer.byteLength(String(one));
  }
  return n + 19; // "Connection: close\r\n" (no agent: http.request adds it)
}

/** The plain-HTTP requests of one client connection: one forwarded at a time, the rest waiting. */
interface Pipeline {
  busy: boolean;
  waiting: Array<() => void>;
}

/** Status and the text the job sees for an upstream failure; `reason` for a refusal's record. */
function failure(e: NodeJS.ErrnoException, t: Target): { status: number; text: string; refused: boolean; reason: string } {
  const fail = (status: number, reason: string, refused = false) => ({ status, text: refused ? `refused ${t.host}:${t.port}: ${reason}` : reason, refused, reason });
  if ((e as { code?: string }).code === 'egress_refused') return fail(403, `${t.host} has no public address (loopback, private, link-local and other special-purpose addresses, and the worker host's own, are refused)`, true);
  if (e.code === 'ENOTFOUND') return fail(502, `could not resolve ${t.host}`); // whatever the DNS said (job-dns.ts)
  if (e.code === 'ETIMEDOUT' || e.code === 'sbx_connect_timeout') return fail(504, `connecting to ${t.host}:${t.port} timed out`);
  if (e.code === 'ECONNREFUSED') return fail(502, `${t.host}:${t.port} refused the connection`);
  return fail(502, `connecting to ${t.host}:${t.port} failed (${e.code ?? e.message})`);
}

export async function startEgressProxy(listen: { fd: number } | { host: string; port: number }, rules: JobEgressRules, opts: EgressProxyOptions): Promise<EgressProxy> {
  const usage: EgressUsage = { connections: 0, refused: 0, bytesSent: 0, bytesReceived: 0, refusals: [] };
  const clients = new Set<net.Socket>();
  const upstreams = new Set<net.Socket>();
  /** Every connection of the job's, both sides, cut. */
  const cutAll = (): void => {
    for (const s of [...clients, ...upstreams]) s.destroy();
  };
  const maxConnections = rules.config.maxConnections;
  const pipelines = new WeakMap<Duplex, Pipeline>();
  const connectTimeoutMs = opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS;
  const { policy } = rules;
  const resolve = opts.resolve ?? dnsOnlyResolve();

  const maxBytes = rules.config.maxBytes ?? null;
  const budgetText = () => `this job's egress budget of ${maxBytes} bytes is used up (SBX_JOB_EGRESS_BYTES)`;
  /** Counts `n` bytes one way; past the budget, cuts every connection (at most one read more got through). */
  const spend = (n: number, way: 'bytesSent' | 'bytesReceived'): void => {
    usage[way] += n;
    if (maxBytes === null || usage.limitReached || usage.bytesSent + usage.bytesReceived <= maxBytes) return;
    usage.limitReached = true;
    opts.logger.info({ jobId: opts.jobId, maxBytes }, 'job egress budget used up: its connections are cut');
    cutAll();
  };

  const maxRefusals = rules.config.maxRefusals ?? null;
  const refuse = (host: string, port: number | null, reason: string): void => {
    usage.refused++;
    if (usage.refusals.length < MAX_REFUSALS_KEPT) {
      usage.refusals.push({ host: host.slice(0, 300), port, reason });
      opts.logger.info({ jobId: opts.jobId, host: host.slice(0, 300), port, reason }, 'job egress refused');
    }
    if (maxRefusals !== null && usage.refused > maxRefusals && !usage.refusalsLimitReached) setImmediate(stopListening); // this refusal's answer first
  };
  /** Past maxRefusals: no more connections to the proxy (the job's kernel refuses them), every open one cut. */
  const stopListening = (): void => {
    if (usage.refusalsLimitReached) return;
    usage.refusalsLimitReached = true;
    opts.logger.info({ jobId: opts.jobId, refused: usage.refused, maxRefusals }, 'job egress proxy refused more than SBX_JOB_EGRESS_REFUSALS requests: it stops listening');
    server.close();
    cutAll();
  };
  /** A short text answer on a raw socket (CONNECT, or before HTTP parsing), then the end. */
  const answerRaw = (socket: Duplex, status: number, text: string): void => {
    const body = `sbx egress proxy: ${text}\n`;
    socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  };
  const answer = (res: http.ServerResponse, status: number, text: string): void => {
    const body = `sbx egress proxy: ${text}\n`;
    res.writeHead(status, http.STATUS_CODES[status], { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), connection: 'close' }).end(body);
  };

  /** A socket to `t` through the policy: the name resolved once, the connected address checked again. */
  const dial = (t: Target, onConnected: (s: net.Socket) => void, onFailed: (e: NodeJS.ErrnoException) => void): net.Socket => {
    const host = bareAddress(t.host);
    const s = net.connect({ host, port: t.port, lookup: guardedLookup(policy, t.port, resolve), noDelay: true });
    upstreams.add(s);
    const timer = setTimeout(() => s.destroy(Object.assign(new Error('connect timeout'), { code: 'sbx_connect_timeout' })), connectTimeoutMs);
    let settled = false;
    s.once('connect', () => {
      clearTimeout(timer);
      settled = true;
      const remote = s.remoteAddress;
      if (remote === undefined || !policy.allows({ host: t.host, port: t.port, address: remote })) {
        s.destroy();
        return onFailed(Object.assign(new Error('refused'), { code: 'egress_refused' }));
      }
      usage.connections++;
      onConnected(s);
    });
    s.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (!settled) (settled = true), onFailed(e);
    });
    s.once('close', () => {
      clearTimeout(timer);
      upstreams.delete(s);
    });
    return s;
  };

  const judged = (t: Target): string | null => {
    if (parseIp(t.host) === null && !/^[A-Za-z0-9.-]+$/.test(t.host)) return `${t.host} is not a host name`;
    return rules.precheck(t.host, t.port);
  };

  const server = http.createServer({ requestTimeout: 0, headersTimeout: 30_000, keepAliveTimeout: 5_000 });

  /** Connections answered at once and being closed: whatever they send is not served. */
  const turnedAway = new WeakSet<Duplex>();
  const turnAway = (socket: net.Socket, status: number, text: string, reason: string): void => {
    turnedAway.add(socket);
    refuse('(connection)', null, reason);
    answerRaw(socket, status, text);
    socket.destroySoon();
  };
  const tooManyText = `more than ${maxConnections} connections at once (SBX_JOB_EGRESS_CONNECTIONS)`;
  server.on('connection', (socket: net.Socket) => {
    if (usage.limitReached) return turnAway(socket, 403, budgetText(), budgetText());
    if (clients.size >= maxConnections) return turnAway(socket, 429, `at most ${maxConnections} connections at once`, tooManyText);
    clients.add(socket);
    socket.once('close', () => clients.delete(socket));
  });

  /** A handler that throws answers 502 to that exchange, never takes the worker down. */
  const guarded = <A extends unknown[]>(handler: (...args: A) => void, fail: (...args: A) => void) => (...args: A) => {
    try {
      handler(...args);
    } catch (e) {
      opts.logger.warn({ jobId: opts.jobId, err: (e as Error).message }, 'job egress proxy: a request failed');
      try { fail(...args); } catch { /* its socket is gone */ }
    }
  };

  server.on('connect', guarded((req: http.IncomingMessage, client: Duplex, head: Buffer) => {
    client.on('error', () => {}); // a job that resets its end: the close below tidies up
    if (turnedAway.has(client)) return void client.destroy();
    const target = connectTarget(req.url);
    if (!target) {
      refuse(String(req.url).slice(0, 300), null, 'not a host:port');
      return answerRaw(client, 400, 'CONNECT needs host:port');
    }
    if (pipelines.get(client)?.busy) return void client.destroy(); // a CONNECT pipelined behind a plain request: nothing sane to answer
    const why = judged(target);
    if (why) {
      refuse(target.host, target.port, why);
      return answerRaw(client, 403, `refused ${target.host}:${target.port}: ${why}`);
    }
    if (upstreams.size >= maxConnections) {
      refuse(target.host, target.port, tooManyText);
      return answerRaw(client, 429, `at most ${maxConnections} connections at once`);
    }
    const upstream = dial(target, (s) => {
      client.write('HTTP/1.1 200 Connection established\r\n\r\n');
      if (head.length) {
        spend(head.length, 'bytesSent');
        s.write(head);
      }
      client.on('data', (c: Buffer) => spend(c.length, 'bytesSent'));
      s.on('data', (c: Buffer) => spend(c.length, 'bytesReceived'));
      client.pipe(s);
      s.pipe(client);
    }, (e) => {
      const f = failure(e, target);
      if (f.refused) refuse(target.host, target.port, f.reason);
      answerRaw(client, f.status, f.text);
    });
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.destroy());
  }, (_req, client) => client.destroy()));

  server.on('request', guarded((req: http.IncomingMessage, res: http.ServerResponse) => {
    req.on('error', () => {});
    res.on('error', () => {});
    if (turnedAway.has(req.socket)) return void req.socket.destroy();
    const url = URL.canParse(req.url ?? '') ? new URL(req.url!) : null;
    if (!url || url.protocol !== 'http:') {
      refuse(String(req.url).slice(0, 300), null, 'not a proxy request');
      return answer(res, 400, 'this is an HTTP proxy: send absolute http:// URLs, or CONNECT host:port for https and anything else (HTTP_PROXY / HTTPS_PROXY are set for that)');
    }
    if (url.username || url.password) {
      refuse(url.hostname, null, 'credentials in the URL');
      return answer(res, 400, 'URLs with credentials are not forwarded');
    }
    const target = { host: url.hostname, port: Number(url.port) || 80 };
    const why = judged(target);
    if (why) {
      refuse(target.host, target.port, why);
      return answer(res, 403, `refused ${target.host}:${target.port}: ${why}`);
    }
    // One request of a client connection forwarded at a time: pipelining does not multiply a job's
    // connections out, and what waits is bounded (past it, a 429; Node stops reading a connection
    // whose answers pile up unsent).
    let pipeline = pipelines.get(req.socket);
    if (!pipeline) pipelines.set(req.socket, (pipeline = { busy: false, waiting: [] }));
    const p = pipeline;
    const next = () => {
      p.busy = false;
      for (let go = p.waiting.shift(); go; go = p.waiting.shift()) {
        if (!req.socket.destroyed) return go();
      }
    };
    const go = () => {
      p.busy = true;
      let over = false;
      const done = () => void (over || ((over = true), next())); // once
      try {
        forward(req, res, url, target, done);
      } catch (e) {
        done();
        throw e;
      }
    };
    if (!p.busy) return go();
    if (p.waiting.length >= MAX_PIPELINED) {
      refuse(target.host, target.port, `more than ${MAX_PIPELINED} requests pipelined on one connection`);
      return answer(res, 429, `at most ${MAX_PIPELINED} requests waiting on one connection`);
    }
    p.waiting.push(() => {
      if (res.destroyed || req.destroyed) return next();
      guarded(go, () => (res.headersSent ? res.destroy() : answer(res, 502, 'the request could not be forwarded')))();
    });
  }, (_req, res) => (res.headersSent ? res.destroy() : answer(res, 502, 'the request could not be forwarded'))));

  /** Forwards one plain-HTTP request; `done` once its answer is over and its connection out closed. */
  const forward = (req: http.IncomingMessage, res: http.ServerResponse, url: URL, target: Target, done: () => void): void => {
    if (upstreams.size >= maxConnections) {
      refuse(target.host, target.port, tooManyText);
      answer(res, 429, `at most ${maxConnections} connections at once`);
      return done();
    }
    const path = `${url.pathname}${url.search}`;
    // Host is the URL's (RFC 9112 §3.2.2): the host judged is the host reached, whatever the job's Host said.
    const headers = { ...forwardable(req.headers), host: url.host };
    spend(headBytes(req.method ?? 'GET', path, headers), 'bytesSent');
    if (usage.limitReached) { // its connection was cut with every other one
      res.destroy();
      return done();
    }
    let pending = 2; // the job's answer over, the connection out closed
    const step = () => void (--pending === 0 && done());
    let connected = false;
    const socket = dial(target, (s) => {
      connected = true;
      s.on('data', (c: Buffer) => spend(c.length, 'bytesReceived')); // the answer's head, framing and body
    }, (e) => {
      const f = failure(e, target);
      if (f.refused) refuse(target.host, target.port, f.reason);
      if (!res.headersSent) answer(res, f.status, f.text);
      else res.destroy();
    });
    socket.once('close', step);
    res.once('close', () => {
      socket.destroy();
      step();
    });
    req.on('data', (c: Buffer) => spend(c.length, 'bytesSent'));
    const up = http.request({
      createConnection: () => socket, method: req.method, path, headers, setHost: false, // no agent: createConnection's socket, this request only
    });
    up.on('response', guarded((r: http.IncomingMessage) => {
      r.on('error', () => res.destroy()); // the destination reset mid-answer: so is the job's
      res.writeHead(r.statusCode ?? 502, r.statusMessage, forwardable(r.headers));
      r.pipe(res);
    }, (r) => {
      r.destroy();
      if (!res.headersSent) answer(res, 502, `${target.host}:${target.port} sent an answer that cannot be passed on`);
      else res.destroy();
    }));
    up.on('error', () => {
      if (!connected) return; // failed before connecting: answered by dial's onFailed
      if (!res.headersSent) answer(res, 502, `the connection to ${target.host}:${target.port} failed`);
      else res.destroy();
    });
    res.once('close', () => up.destroy());
    req.pipe(up);
  };

  server.on('clientError', (_e, socket) => socket.destroy());

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen, () => {
      server.off('error', reject);
      resolve();
    });
  });

  let closing: Promise<EgressUsage> | null = null;
  return {
    address: () => server.address() as net.AddressInfo,
    close: () => (closing ??= (async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      cutAll();
      server.closeAllConnections();
      await closed;
      return usage;
    })()),
  };
}
