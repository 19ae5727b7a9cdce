/**
 * The test harness does not trust a free port to stay free: a server counts as started only when
 * the socket on its port is its own (else another test's server would answer in its place).
 */
import assert from 'node:assert/strict';
import { connect, createServer, type Server } from 'node:net';
import { test } from 'node:test';
import { deadAddress, freePort, listensOn, onFreePort, PortTakenError } from './ports.ts';
import { startRedis } from './redis.ts';

function listen(port = 0): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => resolve(s));
  });
}

test('listensOn tells our own listening socket from a port someone else holds', async () => {
  const server = await listen();
  const port = (server.address() as { port: number }).port;
  try {
    assert.equal(listensOn(process.pid, port), true);
    const redis = await startRedis();
    try {
      assert.equal(listensOn(process.pid, redis.port), false, 'the redis-server child holds that port, not this process');
      assert.equal(listensOn(redis.process.pid, redis.port), true);
      assert.equal(listensOn(redis.process.pid, port), false);
    } finally {
      await redis.stop();
    }
  } finally {
    server.close();
  }
  assert.equal(listensOn(process.pid, port), false, 'closed');
});

test('onFreePort starts again on another port when the first was taken', async () => {
  const tried: number[] = [];
  const taken = await listen(await freePort());
  const takenPort = (taken.address() as { port: number }).port;
  try {
    const got = await onFreePort(async (port) => {
      tried.push(port);
      if (tried.length === 1) port = takenPort; // as if the kernel had handed out a port taken meanwhile
      const s = await listen(port).catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'EADDRINUSE') throw new PortTakenError('test server', port);
        throw e;
      });
      s.close();
      return port;
    });
    assert.equal(tried.length, 2);
    assert.notEqual(got, takenPort);
  } finally {
    taken.close();
  }
  await assert.rejects(onFreePort(async (port) => {
    throw new PortTakenError('always', port);
  }, 3), /always could not listen/);
});

test('a dead address is held while the test uses it: no other server can take it, and a connection is reset', async () => {
  const dead = await deadAddress();
  const port = Number(dead.host.split(':')[1]);
  try {
    await assert.rejects(listen(port), { code: 'EADDRINUSE' }, 'another server cannot take the port');
    const error = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('error', resolve);
      socket.once('close', () => resolve(null));
      socket.once('data', () => resolve(null));
    });
    assert.equal(error?.code, 'ECONNRESET', 'nothing answers there');
  } finally {
    await dead.close();
  }
  (await listen(port)).close(); // given back once closed
});
