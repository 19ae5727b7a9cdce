/**
 * A redis-server of this test file's own (redis.ts), started before its tests and stopped after,
 * with one client (`maxRetriesPerRequest: null`, as BullMQ wants of its connections).
 */
import { after, before } from 'node:test';
import { Redis } from 'ioredis';
import { startRedis, type RunningRedis } from './redis.ts';

export function useRedis(): { readonly server: RunningRedis; readonly client: Redis } {
  let server: RunningRedis | undefined;
  let client: Redis | undefined;
  before(async () => {
    server = await startRedis();
    client = new Redis(server.url, { maxRetriesPerRequest: null });
  });
  after(async () => {
    client?.disconnect();
    await server?.stop();
  });
  return {
    get server() {
      return server!;
    },
    get client() {
      return client!;
    },
  };
}
