/**
 * SBX_REDIS_URL=rediss://… asks for TLS to Redis: the password and every job's data travel over it.
 * Behind Sentinels the connection goes to the master they name, and it must be TLS too (ioredis makes
 * it plain unless told: enableTLSForSentinelMode). Here the master listens on TLS only, so a plain
 * connection cannot be served; the Sentinel reaches it over TLS itself (tls-replication). The client
 * runs in a process of its own that trusts the test CA (NODE_EXTRA_CA_CERTS), as a deployment with
 * its own CA would.
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
let ca: TestCa;
let dir: string;
let ports: { master: number; sentinel: number };
const procs: ChildProcess[] = [];

before(async () => {
  ca = await createTestCa();
  const server = await ca.issue({ commonName: 'redis', usage: 'server' });
  dir = mkdtempSync(join(tmpdir(), 'sbx-redis-tls-'));
  const tlsConf = [`tls-cert-file ${server.certFile}`, `tls-key-file ${server.keyFile}`, `tls-ca-cert-file ${ca.caFile}`, 'tls-auth-clients no'];
  ports = await onFreePorts(2, async ([master = 0, sentinel = 0]) => {
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
    const s = spawn(...diesWithParent('redis-server', [sentinelConf, '--sentinel']), { stdio: 'ignore' });
    procs.push(s);
    await waitUntil(async () => {
      if (s.exitCode !== null) throw new PortTakenError('redis-server --sentinel', sentinel);
      if (!listensOn(s.pid, sentinel)) return false;
      const info = await run('redis-cli', ['-p', String(sentinel), 'sentinel', 'master', 'm']).then((r) => r.stdout, () => '');
      return /^flags\nmaster$/m.test(info); // reached over TLS: not s_down
    }, 15_000, 'the sentinel to reach its TLS master');
    return { master, sentinel };
  });
});

after(async () => {
  for (const p of procs) p.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
  await ca.remove();
});

/** connectRedis() with the config of `env`, in a process that trusts the test CA: the PING answer, or the error. */
async function pingWith(env: Record<string, string>): Promise<string> {
  const script = `
    import { loadConfig } from './core/src/config.ts';
    import { connectRedis } from './core/src/redis.ts';
    const c = connectRedis(loadConfig(${JSON.stringify(env)}).env, 'tls-test');
    c.on('error', () => {});
    const t = setTimeout(() => { console.log('no answer in 5 s'); process.exit(0); }, 5000);
    try { console.log(await c.ping()); } catch (e) { console.log(e.message); }
    clearTimeout(t); c.disconnect();`;
  const r = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, env: { ...process.env, NODE_EXTRA_CA_CERTS: ca.caFile } });
  return r.stdout.trim();
}

test('rediss:// reaches a TLS-only Redis directly', async () => {
  assert.equal(await pingWith({ SBX_REDIS_URL: `rediss://:${PASSWORD}@127.0.0.1:${ports.master}` }), 'PONG');
});

test('rediss:// behind a Sentinel reaches the master it names over TLS too', async () => {
  assert.equal(await pingWith({ SBX_REDIS_URL: `rediss://:${PASSWORD}@127.0.0.1`, SBX_REDIS_SENTINELS: `127.0.0.1:${ports.sentinel}`, SBX_REDIS_SENTINEL_NAME: 'm' }), 'PONG');
});
