/**
 * Where jobs stand in Redis, for a test that found them stuck: each job's record (status, attempt,
 * worker, history), every key naming it (its BullMQ entries on any queue), the lists, sets and sorted
 * sets that hold it (BullMQ's wait/active/prioritized, hand-off deadlines, pending requeues, a
 * worker's running set), and the lines of the processes' logs that name it. Read-only: one SCAN of
 * the keyspace for all the jobs; keys named after other jobs are passed over unread.
 */
import type { Redis } from 'ioredis';

const JOB_ID = /j_[0-9A-Z]{26}/;

export async function jobsWhereabouts(redis: Redis, ids: readonly string[], logs: Record<string, string>): Promise<string> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, found] = await redis.scan(cursor, 'COUNT', 1000);
    keys.push(...found);
    cursor = next;
  } while (cursor !== '0');
  const wanted = new Set(ids);
  // Keys named after a job are read only for these jobs; the others (queues, indexes, sets) all.
  const read = keys.filter((k) => !JOB_ID.test(k) || wanted.has(k.match(JOB_ID)![0])).sort();
  const found = new Map<string, string[]>(ids.map((id) => [id, []]));
  for (const key of read) {
    const type = await redis.type(key);
    const named = ids.find((id) => key.includes(id));
    if (named) {
      found.get(named)!.push(type === 'hash' ? describeHash(key, await redis.hgetall(key)) : `${key} (${type})`);
      continue;
    }
    const members = type === 'list' ? await redis.lrange(key, 0, -1)
      : type === 'zset' ? await redis.zrange(key, 0, -1)
      : type === 'set' ? await redis.smembers(key)
      : [];
    for (const id of ids) {
      const holds = members.filter((m) => m.includes(id));
      if (holds.length) found.get(id)!.push(`in ${key} (${type}): ${holds.join(', ')}`);
    }
  }
  return ids.map((id) => {
    const lines = [`job ${id}:`, ...found.get(id)!.map((l) => `  ${l}`)];
    for (const [name, log] of Object.entries(logs)) {
      const said = log.split('\n').filter((l) => l.includes(id));
      lines.push(`  ${name} log: ${said.length ? '\n    ' + said.join('\n    ') : 'nothing about it'}`);
    }
    return lines.join('\n');
  }).join('\n');
}

function describeHash(key: string, h: Record<string, string>): string {
  const doc = h.doc ? (JSON.parse(h.doc) as { attempts?: number; worker?: string | null; history?: unknown[] }) : null;
  const brief = Object.fromEntries(Object.entries(h).filter(([k]) => !['doc', 'spec', 'data', 'auth'].includes(k)).map(([k, v]) => [k, v.slice(0, 200)]));
  return `${key} (hash) ${JSON.stringify(brief)}${doc ? ` doc: attempts ${doc.attempts ?? 1}, worker ${doc.worker}, history ${JSON.stringify(doc.history ?? [])}` : ''}`;
}
