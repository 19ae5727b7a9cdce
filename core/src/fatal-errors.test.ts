/**
 * A crash's last words: an unhandled rejection of a failed Redis command is logged through the
 * process's logger, without the command's arguments (Node's own printer wrote them all: a job's env
 * value here), and the process exits 1 as Node's own handling would.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { useRedis } from '../../test/harness/use-redis.ts';

const redis = useRedis();

const program = (port: number, secret: string) => `
import { Redis } from 'ioredis';
import { createLogger } from './core/src/logger.ts';
import { exitOnFatalErrors } from './core/src/fatal-errors.ts';
exitOnFatalErrors(createLogger('crash-test'));
const r = new Redis({ port: ${port}, host: '127.0.0.1', lazyConnect: true });
await r.set('fatal-string', 'x');
void r.hset('fatal-string', 'spec', ${JSON.stringify(JSON.stringify({ env: { TOKEN: secret } }))}); // WRONGTYPE, unhandled
`;

for (const handled of [true, false]) {
  test(`an unhandled rejection of a Redis error is logged at fatal without the command's arguments, exit 1${handled ? '' : ' (without exitOnFatalErrors: Node prints them)'}`, () => {
    const secret = `ENV-VALUE-secret-${process.pid}`;
    const code = handled ? program(redis.server.port, secret) : program(redis.server.port, secret).replace(/^exitOnFatalErrors.*$/m, '');
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: new URL('../..', import.meta.url).pathname, encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 1, r.stderr);
    const said = r.stdout + r.stderr;
    if (!handled) return assert.ok(said.includes(secret), `Node's own printer shows the arguments (what the handler is for): ${said}`);
    assert.ok(!said.includes(secret), said);
    const line = JSON.parse(r.stdout.trim().split('\n').pop()!) as { level: number; msg: string; err: { message: string; command: unknown } };
    assert.equal(line.level, 60);
    assert.equal(line.msg, 'unhandled rejection: exiting');
    assert.match(line.err.message, /WRONGTYPE/);
    assert.deepEqual(line.err.command, { name: 'hset', args: '(3 not logged)' });
  });
}
