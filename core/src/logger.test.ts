/**
 * What the logs say of a Redis error: ioredis attaches the failed command's arguments to the error
 * (`err.command.args`), and pino's error serializer wrote them out: an API whose Redis refused a job
 * record's write (full: OOM, or an ACL) logged the record, its env values and stdin, at error level.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { useRedis } from '../../test/harness/use-redis.ts';
import { createLogger } from './logger.ts';

const redis = useRedis();

function capture(): { stream: Writable; text: () => string } {
  let text = '';
  const stream = new Writable({ write(chunk, _enc, done) { text += chunk; done(); } });
  return { stream, text: () => text };
}

test("a Redis error is logged with its command's name, never its arguments (a job's env, stdin, credentials)", async () => {
  const secret = 'ENV-VALUE-secret-0123456789';
  await redis.client.set('a-string', 'x');
  const err = await redis.client.hset('a-string', 'spec', JSON.stringify({ env: { TOKEN: secret } })).then(() => null, (e: Error) => e);
  assert.ok(err, 'Redis refused the write (WRONGTYPE)');
  assert.ok(JSON.stringify((err as { command?: unknown }).command).includes(secret), 'ioredis attached the arguments to the error');
  const out = capture();
  const logger = createLogger('test', 'info', out.stream);
  logger.error({ err }, 'unhandled error');
  logger.error({ err: new AggregateError([err], 'all failed') }, 'nested');
  logger.error({ err: Object.assign(new Error('outer'), { lastNodeError: err }) }, 'nested in a field');
  const lines = out.text().trim().split('\n').map((l) => JSON.parse(l) as { err: { type: string; message: string; command?: { name: string; args: string } } });
  assert.equal(lines.length, 3);
  assert.ok(!out.text().includes(secret), out.text());
  assert.equal(lines[0]!.err.type, 'ReplyError');
  assert.match(lines[0]!.err.message, /WRONGTYPE/);
  assert.deepEqual(lines[0]!.err.command, { name: 'hset', args: '(3 not logged)' });
});

test('other errors are logged as pino logs them: type, message with causes, stack, own fields', () => {
  const out = capture();
  const logger = createLogger('test', 'info', out.stream);
  logger.error({ err: Object.assign(new Error('outer', { cause: new Error('inner') }), { code: 'E_X', path: '/p' }) }, 'failed');
  const line = JSON.parse(out.text()) as { err: Record<string, unknown> };
  assert.equal(line.err.type, 'Error');
  assert.equal(line.err.message, 'outer: inner');
  assert.equal(line.err.code, 'E_X');
  assert.equal(line.err.path, '/p');
  assert.match(String(line.err.stack), /caused by: Error: inner/);
});
