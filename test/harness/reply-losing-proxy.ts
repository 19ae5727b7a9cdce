/**
 * A TCP proxy in front of a redis-server that loses one reply on demand: armed with a needle (a key
 * name, a job id), it passes on the command whose bytes hold it, lets Redis apply it, and then
 * closes the client's connection instead of handing the reply over. That is what a client sees
 * when Redis is killed between applying a command and answering it (with `appendfsync always` the
 * answer waits for the fsync, so the window is real under a busy disk), or when the link drops then.
 * ioredis reconnects and sends the command again (autoResendUnfulfilledCommands): the tests check
 * that the second answer leads the caller to the same place as the first would have.
 *
 * Redis answers in order, so with one command in flight on the connection the next bytes from Redis
 * after the needle's command are its answer (or begin with it): those bytes, and the connection, are
 * dropped. Every new client connection goes to the same server, so a reconnect works at once.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { after, before } from 'node:test';
import { Redis } from 'ioredis';
import { startRedis, type RunningRedis } from './redis.ts';

export interface ReplyLosingProxy {
  url: string;
  /**
   * The next command whose bytes hold every one of `needles` (compared without case: ioredis sends
   * `evalsha`, a test may say EVALSHA) is applied and its answer lost (the connection closed);
   * resolves once that happened. At most one armed at a time.
   */
  loseReplyTo(...needles: string[]): Promise<void>;
  /** How many answers were lost so far. */
  readonly lost: number;
  close(): Promise<void>;
}

export async function startReplyLosingProxy(target: { host: string; port: number }): Promise<ReplyLosingProxy> {
  let armed: { needles: string[]; done: () => void } | null = null;
  let lost = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    sockets.add(client).add(upstream);
    let dropping: (() => void) | null = null;
    const closeBoth = () => (client.destroy(), upstream.destroy());
    client.on('data', (chunk) => {
      if (armed && !dropping && holdsAll(chunk, armed.needles)) {
        dropping = armed.done;
        armed = null;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (!dropping) return void client.write(chunk);
      lost++;
      closeBoth();
      dropping();
    });
    for (const s of [client, upstream]) {
      s.on('error', () => {});
      s.on('close', () => {
        sockets.delete(s);
        closeBoth();
      });
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const port = (server.address() as { port: number }).port;
  return {
    url: `redis://127.0.0.1:${port}`,
    get lost() {
      return lost;
    },
    loseReplyTo(...needles) {
      if (armed) throw new Error('a reply is already to be lost');
      return new Promise<void>((done) => (armed = { needles: needles.map((n) => n.toLowerCase()), done }));
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function holdsAll(chunk: Buffer, needles: readonly string[]): boolean {
  const text = chunk.toString('latin1').toLowerCase();
  return needles.every((n) => text.includes(n));
}

/**
 * For a test file: a redis-server of its own (redis.ts) with this proxy in front, started before its
 * tests and stopped after. `viaProxy` reaches Redis through the proxy as sbx's connections do
 * (core/src/redis.ts): `null` retries as a worker's (waits out an outage), a number as the API's;
 * either way a command not answered is sent again on reconnecting. `direct` looks without the proxy.
 * A `before` hook of the test file's own awaits `ready` first (node:test does not wait for this one).
 */
export function useReplyLosingRedis(opts: { maxRetriesPerRequest: number | null }): { readonly ready: Promise<void>; readonly server: RunningRedis; readonly proxy: ReplyLosingProxy; readonly viaProxy: Redis; readonly direct: Redis } {
  let started = () => {};
  const ready = new Promise<void>((done) => (started = done));
  let server: RunningRedis | undefined;
  let proxy: ReplyLosingProxy | undefined;
  let viaProxy: Redis | undefined;
  let direct: Redis | undefined;
  before(async () => {
    server = await startRedis();
    proxy = await startReplyLosingProxy({ host: '127.0.0.1', port: server.port });
    viaProxy = new Redis(proxy.url, { maxRetriesPerRequest: opts.maxRetriesPerRequest, retryStrategy: () => 20 });
    viaProxy.on('error', () => {}); // each lost answer closes the connection; ioredis reconnects
    direct = new Redis(server.url, { maxRetriesPerRequest: null });
    started();
  });
  after(async () => {
    viaProxy?.disconnect();
    direct?.disconnect();
    await proxy?.close();
    await server?.stop();
  });
  return {
    ready,
    get server() { return server!; },
    get proxy() { return proxy!; },
    get viaProxy() { return viaProxy!; },
    get direct() { return direct!; },
  };
}
