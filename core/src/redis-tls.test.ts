/**
 * SBX_REDIS_URL=rediss://… asks for TLS to Redis: the password and every job's data travel over it.
 * Behind Sentinels the connection goes to the master they name, and it must be TLS too (ioredis makes
 * it plain unless told: enableTLSForSentinelMode). Here the master listens on TLS only, so a plain
 * connection cannot be served; the Sentinel reaches it over TLS itself (tls-replication). The client
 * runs in a process of its own that trusts the test CA (NODE_EXTRA_CA_CERTS), as a deployment with
 * its own CA would. A second Sentinel guards itself: TLS only and a password of its own
 * (SBX_REDIS_SENTINEL_TLS / _USERNAME / _PASSWORD), as a production Sentinel does.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { createTestCa, type TestCa } from '../../test/harness/test-pki.ts';
import { diesWithParent } from '../../test/harness/dies-with-parent.ts';
import { listensOn, onFreePorts, PortTakenError } from '../../test/harness/ports.ts';
import { waitUntil } from '../../test/harness/redis.ts';

const run = promisify(execFile);
const ROOT = new URL('../../', import.meta.url).pathname;
const PASSWORD = 'tls-test-password';
const SENTINEL_PASSWORD = 'sentinel-own-password';
let ca: TestCa;
let dir: string;
let ports: { master: number; sentinel: number; guarded: number };
const procs: ChildProcess[] = [];

before(async () => {
  ca = await createTestCa();
  const server = await ca.issue({ commonName: 'redis', usage: 'server' });
  dir = mkdtempSync(join(tmpdir(), 'sbx-redis-tls-'));
  const tlsConf = [`tls-cert-file ${server.certFile}`, `tls-key-file ${server.keyFile}`, `tls-ca-cert-file ${ca.caFile}`, 'tls-auth-clients no'];
  ports = await onFreePorts(3, async ([master = 0, sentinel = 0, guarded = 0]) => {
    const masterConf = join(dir, 'master.conf');
    writeFileSync(masterConf, ['port 0', `tls-port ${master}`, 'bind 127.0.0.1', `requirepass ${PASSWORD}`, "save ''", `dir ${dir}`, ...tlsConf, ''].join('\n'));
    const sentinelConf = join(dir, 'sentinel.conf');
    writeFileSync(sentinelConf, [`port ${sentinel}`, 'bind 127.0.0.1', `dir ${dir}`, 'tls-replication yes', ...tlsConf,
      `sentinel monitor m 127.0.0.1 ${master} 1`, `sentinel auth-pass m ${PASSWORD}`, ''].join('\n'));
    const m = spawn(...diesWithParent('redis-server', [masterConf]), { stdio: 'ignore' });
    procs.push(m);
    await waitUntil(async () => {
      if (m.exitCode !== null) throw new PortTakenError('redis-server (TLS)', master);
      return listensOn(m.pid, master);
    }, 10_000, 'the TLS master to listen');
    const guardedConf = join(dir, 'guarded-sentinel.conf');
    writeFileSync(guardedConf, ['port 0', `tls-port ${guarded}`, 'bind 127.0.0.1', `dir ${dir}`, 'tls-replication yes', ...tlsConf, `requirepass ${SENTINEL_PASSWORD}`,
      `sentinel monitor m 127.0.0.1 ${master} 1`, `sentinel auth-pass m ${PASSWORD}`, ''].join('\n'));
    const tlsCli = ['--tls', '--cacert', ca.caFile, '--user', 'default', '--pass', SENTINEL_PASSWORD, '--no-auth-warning'];
    for (const [conf, port, cli] of [[sentinelConf, sentinel, []], [guardedConf, guarded, tlsCli]] as const) {
      const s = spawn(...diesWithParent('redis-server', [conf, '--sentinel']), { stdio: 'ignore' });
      procs.push(s);
      await waitUntil(async () => {
        if (s.exitCode !== null) throw new PortTakenError('redis-server --sentinel', port);
        if (!listensOn(s.pid, port)) return false;
        const info = await run('redis-cli', [...cli, '-p', String(port), 'sentinel', 'master', 'm']).then((r) => r.stdout, () => '');
        return /^flags\nmaster$/m.test(info); // reached over TLS: not s_down
      }, 15_000, 'the sentinel to reach its TLS master');
    }
    return { master, sentinel, guarded };
  });
});

after(async () => {
  for (const p of procs) p.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
  await ca.remove();
});

/**
 * connectRedis() with the config of `env`, in a process that trusts the test CA: the PING answer and
 * the database the connection is on (`PONG db=0`), or the connection's first error (what the API and
 * workers log: `error: …`).
 */
async function pingWith(env: Record<string, string>): Promise<string> {
  const script = `
    import { loadConfig } from './core/src/config.ts';
    import { connectRedis } from './core/src/redis.ts';
    const c = connectRedis(loadConfig(${JSON.stringify(env)}).env, 'tls-test');
    c.on('error', (e) => { console.log('error: ' + e.message); process.exit(0); });
    const t = setTimeout(() => { console.log('no answer in 5 s'); process.exit(0); }, 5000);
    try {
      const pong = await c.ping();
      console.log(pong + ' ' + / db=\\d+/.exec(await c.call('CLIENT', 'INFO'))[0].trim());
    } catch (e) { console.log(e.message); }
    clearTimeout(t); c.disconnect();`;
  const r = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, env: { ...process.env, NODE_EXTRA_CA_CERTS: ca.caFile } });
  return r.stdout.trim();
}

test('rediss:// reaches a TLS-only Redis directly', async () => {
  assert.equal(await pingWith({ SBX_REDIS_URL: `rediss://:${PASSWORD}@127.0.0.1:${ports.master}` }), 'PONG db=0');
});

test('rediss:// behind a Sentinel reaches the master it names over TLS too, on the URL\'s database', async () => {
  const viaSentinel = { SBX_REDIS_SENTINELS: `127.0.0.1:${ports.sentinel}`, SBX_REDIS_SENTINEL_NAME: 'm' };
  assert.equal(await pingWith({ SBX_REDIS_URL: `rediss://:${PASSWORD}@127.0.0.1`, ...viaSentinel }), 'PONG db=0');
  // Behind Sentinels the URL's database was dropped: every deployment on db 0.
  assert.equal(await pingWith({ SBX_REDIS_URL: `rediss://:${PASSWORD}@127.0.0.1/3`, ...viaSentinel }), 'PONG db=3');
});

test('a Sentinel on TLS with a password of its own is reached with SBX_REDIS_SENTINEL_TLS and its credentials, and not without them', async () => {
  const guarded = { SBX_REDIS_URL: `rediss://:${PASSWORD}@127.0.0.1`, SBX_REDIS_SENTINELS: `127.0.0.1:${ports.guarded}`, SBX_REDIS_SENTINEL_NAME: 'm' };
  const ok = { ...guarded, SBX_REDIS_SENTINEL_TLS: 'true', SBX_REDIS_SENTINEL_PASSWORD: SENTINEL_PASSWORD };
  assert.equal(await pingWith(ok), 'PONG db=0');
  assert.equal(await pingWith({ ...ok, SBX_REDIS_SENTINEL_USERNAME: 'default' }), 'PONG db=0');
  // Each missing or wrong piece fails, and what is logged names the Sentinels' refusal.
  const refused = (lastError: string) => new RegExp(`^error: All sentinels are unreachable\\..* Last error: ${lastError}`);
  assert.match(await pingWith({ ...ok, SBX_REDIS_SENTINEL_PASSWORD: 'wrong' }), refused('WRONGPASS'));
  assert.match(await pingWith({ ...ok, SBX_REDIS_SENTINEL_USERNAME: 'nobody' }), refused('WRONGPASS'));
  assert.match(await pingWith({ ...guarded, SBX_REDIS_SENTINEL_TLS: 'true' }), refused('NOAUTH'));
  assert.match(await pingWith({ ...guarded, SBX_REDIS_SENTINEL_PASSWORD: SENTINEL_PASSWORD, SBX_REDIS_SENTINEL_TLS: 'false' }), refused('Connection is closed'));
});
