/**
 * Where a job stands in Redis, for a test that found it stuck: its record (status, attempt, worker,
 * history), every key naming it (its BullMQ entries on any queue, their state), the sets and sorted
 * sets that hold it (BullMQ's wait/active/prioritized, hand-off deadlines, pending requeues, a
 * worker's running set), and the lines of the processes' logs that name it. Read-only; SCAN, never KEYS.
 */
import type { Redis } from 'ioredis';

export async function jobWhereabouts(redis: Redis, id: string, logs: Record<string, string>): Promise<string> {
  const lines: string[] = [`job ${id}:`];
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, found] = await redis.scan(cursor, 'COUNT', 1000);
    keys.push(...found);
    cursor = next;
  } while (cursor !== '0');
  for (const key of keys.sort()) {
    const type = await redis.type(key);
    if (key.includes(id)) {
      if (type === 'hash') {
        const h = await redis.hgetall(key);
        const doc = h.doc ? (JSON.parse(h.doc) as { attempts?: number; worker?: string | null; history?: unknown[] }) : null;
        const brief = Object.fromEntries(Object.entries(h).filter(([k]) => !['doc', 'spec', 'data', 'auth'].includes(k)).map(([k, v]) => [k, v.slice(0, 200)]));
        lines.push(`  ${key} (hash) ${JSON.stringify(brief)}${doc ? ` doc: attempts ${doc.attempts ?? 1}, worker ${doc.worker}, history ${JSON.stringify(doc.history ?? [])}` : ''}`);
      } else lines.push(`  ${key} (${type})`);
      continue;
    }
    const holds = type === 'list' ? (await redis.lrange(key, 0, -1)).filter((m) => m.includes(id))
      : type === 'zset' ? (await redis.zrange(key, 0, -1)).filter((m) => m.includes(id))
      : type === 'set' ? (await redis.smembers(key)).filter((m) => m.includes(id))
      : [];
    if (holds.length) lines.push(`  in ${key} (${type}): ${holds.join(', ')}`);
  }
  for (const [name, log] of Object.entries(logs)) {
    const named = log.split('\n').filter((l) => l.includes(id));
    lines.push(`  ${name} log: ${named.length ? '\n    ' + named.join('\n    ') : 'nothing about it'}`);
  }
  return lines.join('\n');
}
