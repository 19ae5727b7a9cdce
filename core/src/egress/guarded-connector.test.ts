/**
 * guardedConnector / guardedLookup against real sockets: refusals happen before any connection
 * (the server counts none), one message whatever the port, a name is resolved once and the socket
 * goes to exactly the checked address (DNS rebinding), and the after-connect check catches a
 * connector that bypassed the lookup.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import type { LookupAddress } from 'node:dns';
import { connect, createServer, type Server } from 'node:net';
import { Agent, buildConnector, request } from 'undici';
import { EgressRefusedError, type SbxError } from '../errors.ts';
import { egressAllowList } from './egress-allow.ts';
import { EgressPolicy } from './egress-policy.ts';
import { egressAgent, guardedConnector, guardedLookup } from './guarded-connector.ts';

interface CountingServer {
  port: number;
  connections: number;
  server: Server;
}

const servers: Server[] = [];
after(() => servers.forEach((s) => s.close()));

/** An HTTP/1.1 server answering 200 "ok" to anything, counting TCP connections. */
async function listen(host = '127.0.0.1'): Promise<CountingServer> {
  const state = { port: 0, connections: 0, server: createServer() };
  state.server.on('connection', (socket) => {
    state.connections++;
    socket.on('data', () => socket.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok'));
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => state.server.listen(0, host, resolve));
  state.port = (state.server.address() as { port: number }).port;
  servers.push(state.server);
  return state;
}

/** A closed port: a server that listened there has closed (a refusal must not depend on that). */
async function closedPort(): Promise<number> {
  const s = await listen();
  await new Promise<void>((resolve) => s.server.close(() => resolve()));
  return s.port;
}

async function get(url: string, agent: Agent): Promise<string> {
  const res = await request(url, { dispatcher: agent });
  return res.body.text();
}

async function refusal(url: string, agent: Agent): Promise<SbxError> {
  const e = await get(url, agent).then(
    () => assert.fail(`${url} was reached`),
    (err: unknown) => err,
  );
  assert.ok(e instanceof EgressRefusedError, String(e));
  return e;
}

test('IP literals and names resolving to loopback are refused before connecting, one message for every port', async () => {
  const agent = egressAgent(new EgressPolicy());
  const open = await listen();
  const closed = await closedPort();
  const literal = [(await refusal(`http://127.0.0.1:${open.port}/`, agent)).message, (await refusal(`http://127.0.0.1:${closed}/`, agent)).message];
  assert.equal(literal[0], literal[1]);
  assert.doesNotMatch(literal[0]!, new RegExp(`${open.port}|${closed}`));
  const named = [(await refusal(`http://localhost:${open.port}/`, agent)).message, (await refusal(`http://localhost:${closed}/`, agent)).message];
  assert.equal(named[0], named[1]);
  await refusal(`http://[::ffff:127.0.0.1]:${open.port}/`, agent);
  assert.equal(open.connections, 0, 'the listening server saw no connection');
  await agent.close();
});

test('an allow-listed host:port is reached, by address or by a name resolving to it; other ports are not', async () => {
  const open = await listen();
  const other = await listen();
  const agent = egressAgent(new EgressPolicy(egressAllowList(`127.0.0.1:${open.port}`)));
  assert.equal(await get(`http://127.0.0.1:${open.port}/`, agent), 'ok');
  assert.equal(await get(`http://localhost:${open.port}/`, agent), 'ok');
  await refusal(`http://127.0.0.1:${other.port}/`, agent);
  assert.equal(other.connections, 0);
  await agent.close();
});

/** A resolver whose answers change between calls, as a rebinding DNS server's would. */
function rebindingResolver(answers: string[][]): { calls: number; resolve: Parameters<typeof guardedLookup>[2] } {
  const state = {
    calls: 0,
    resolve: ((_host: string, _options: unknown, callback: (err: null, addresses: LookupAddress[]) => void) => {
      const answer = answers[Math.min(state.calls++, answers.length - 1)]!;
      queueMicrotask(() => callback(null, answer.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }))));
    }) as Parameters<typeof guardedLookup>[2],
  };
  return state;
}

function connectVia(host: string, port: number, lookup: ReturnType<typeof guardedLookup>): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, lookup }, () => {
      resolve(socket.remoteAddress ?? '');
      socket.destroy();
    });
    socket.on('error', reject);
  });
}

test('a name is resolved once and the socket goes to exactly the checked address (DNS rebinding)', async () => {
  const allowed = await listen('127.0.0.2');
  const policy = new EgressPolicy(egressAllowList(`127.0.0.2:${allowed.port}`));
  // checked answer: the allowed address; any later answer would be loopback 127.0.0.1
  const dns = rebindingResolver([['127.0.0.2'], ['127.0.0.1']]);
  assert.equal(await connectVia('rebind.test', allowed.port, guardedLookup(policy, allowed.port, dns.resolve)), '127.0.0.2');
  assert.equal(dns.calls, 1, 'one resolution per connection');
  // a mixed answer keeps only what is allowed
  const mixed = rebindingResolver([['127.0.0.1', '::1', '127.0.0.2']]);
  assert.equal(await connectVia('mixed.test', allowed.port, guardedLookup(policy, allowed.port, mixed.resolve)), '127.0.0.2');
  // nothing allowed: refused without connecting
  const loopback = await listen();
  const only = rebindingResolver([['127.0.0.1']]);
  await assert.rejects(connectVia('only.test', loopback.port, guardedLookup(policy, loopback.port, only.resolve)), EgressRefusedError);
  assert.equal(loopback.connections, 0);
});

test('after connecting, the peer address is checked again (a connector that bypassed the lookup is caught)', async () => {
  const target = await listen();
  // A connector that ignores the lookup and goes to 127.0.0.1 whatever the name says.
  const bypassing = (options: buildConnector.BuildOptions): buildConnector.connector => {
    const inner = buildConnector({ ...options, lookup: undefined } as buildConnector.BuildOptions);
    return (opts, callback) => inner({ ...opts, hostname: '127.0.0.1' }, callback);
  };
  const agent = new Agent({ connect: guardedConnector(new EgressPolicy(), {}, bypassing) });
  const e = await refusal(`http://public.example:${target.port}/`, agent);
  assert.match(e.message, /^connecting to public\.example is refused/);
  await agent.close();
});
