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
/** Keys whose slots (15495, 3300, 7365) lie with each of a three-node cluster's masters: written, a connection has reached them all. */
const KEYS_ON_EVERY_NODE = ['a', 'b', 'c'];
let ca: TestCa;
let dir: string;
let ports: { master: number; sentinel: number; guarded: number };
let clusterPorts: number[];
const procs: ChildProcess[] = [];

before(async () => {
  ca = await createTestCa();
  const server = await ca.issue({ commonName: 'redis', usage: 'server' });
  dir = mkdtempSync(join(tmpdir(), 'sbx-redis-tls-'));
  const tlsConf = [`tls-cert-file ${server.certFile}`, `tls-key-file ${server.keyFile}`, `tls-ca-cert-file ${ca.caFile}`, 'tls-auth-clients no'];
  ports = await onFreePorts(3, async ([master = 0, sentinel = 0, guarded = 0]) => {
    await startRedisServer('master', master, ['port 0', `tls-port ${master}`, `requirepass ${PASSWORD}`, "save ''", ...tlsConf]);
    const monitor = ['tls-replication yes', ...tlsConf, `sentinel monitor m 127.0.0.1 ${master} 1`, `sentinel auth-pass m ${PASSWORD}`];
    const tlsCli = ['--tls', '--cacert', ca.caFile, '--user', 'default', '--pass', SENTINEL_PASSWORD, '--no-auth-warning'];
    for (const [name, port, conf, cli] of [['sentinel', sentinel, [`port ${sentinel}`], []], ['guarded-sentinel', guarded, ['port 0', `tls-port ${guarded}`, `requirepass ${SENTINEL_PASSWORD}`], tlsCli]] as const) {
      await startRedisServer(name, port, [...conf, ...monitor], ['--sentinel']);
      await waitUntil(async () => {
        const info = await run('redis-cli', [...cli, '-p', String(port), 'sentinel', 'master', 'm']).then((r) => r.stdout, () => '');
        return /^flags\nmaster$/m.test(info); // reached over TLS: not s_down
      }, 15_000, 'the sentinel to reach its TLS master');
    }
    return { master, sentinel, guarded };
  });
  clusterPorts = await startTlsCluster(tlsConf);
});

/** redis-server (`args`: `--sentinel`) on `name`.conf holding `conf`, bound to loopback, once it listens on `port`. */
async function startRedisServer(name: string, port: number, conf: string[], args: string[] = []): Promise<void> {
  const file = join(dir, `${name}.conf`);
  writeFileSync(file, [...conf, 'bind 127.0.0.1', `dir ${dir}`, ''].join('\n'));
  const p = spawn(...diesWithParent('redis-server', [file, ...args]), { stdio: 'ignore' });
  procs.push(p);
  await waitUntil(async () => {
    if (p.exitCode !== null) throw new PortTakenError(`redis-server ${name}`, port);
    return listensOn(p.pid, port);
  }, 10_000, `${name} to listen`);
}

/**
 * Three TLS-only cluster nodes (`tls-cluster yes`: the bus and the addresses they announce are TLS
 * too) with a password, each a master of a third of the slots: their client ports.
 */
async function startTlsCluster(tlsConf: string[]): Promise<number[]> {
  // The cluster bus is mutual TLS: each node shows the others a client certificate.
  const nodeCert = await ca.issue({ commonName: 'redis-node', usage: 'client' });
  const bus = [`tls-client-cert-file ${nodeCert.certFile}`, `tls-client-key-file ${nodeCert.keyFile}`];
  return onFreePorts(6, async (ports) => {
    const nodes = ports.slice(0, 3);
    for (const [i, port] of nodes.entries()) {
      await startRedisServer(`cluster-${port}`, port, ['port 0', `tls-port ${port}`, `cluster-port ${ports[3 + i]}`, `requirepass ${PASSWORD}`, `masterauth ${PASSWORD}`, "save ''",
        'appendonly no', 'cluster-enabled yes', `cluster-config-file nodes-${port}.conf`, 'tls-cluster yes', 'tls-replication yes', ...tlsConf, ...bus]);
    }
    // Made by hand: redis-cli --cluster create (7.0) meets each node at its port + 10000, not at its cluster-port.
    const cli = (port: number, ...args: string[]) => run('redis-cli', ['--tls', '--cacert', ca.caFile, '-a', PASSWORD, '--no-auth-warning', '-p', String(port), ...args]);
    const thirds = [[0, 5460], [5461, 10922], [10923, 16383]];
    for (const [i, port] of nodes.entries()) await cli(port, 'cluster', 'addslotsrange', String(thirds[i]![0]), String(thirds[i]![1]));
    for (let i = 1; i < 3; i++) await cli(nodes[0]!, 'cluster', 'meet', '127.0.0.1', String(nodes[i]), String(ports[3 + i]));
    for (const port of nodes) await waitUntil(async () => (await cli(port, 'cluster', 'info')).stdout.includes('cluster_state:ok'), 15_000, 'the TLS cluster to be ok');
    return nodes;
  });
}

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
      for (const k of ${JSON.stringify(KEYS_ON_EVERY_NODE)}) await c.set(k, k);
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

test('rediss:// with a cluster reaches every node over TLS (the nodes it is given and those their slots lead to)', async () => {
  const said = await pingWith({ SBX_REDIS_URL: `rediss://:${PASSWORD}@127.0.0.1`, SBX_REDIS_CLUSTER_NODES: `127.0.0.1:${clusterPorts[0]}` });
  assert.equal(said, 'PONG db=0');
  // Without TLS the same cluster is not reached: a plain connection is what these nodes cannot serve.
  assert.doesNotMatch(await pingWith({ SBX_REDIS_URL: `redis://:${PASSWORD}@127.0.0.1`, SBX_REDIS_CLUSTER_NODES: `127.0.0.1:${clusterPorts[0]}` }), /^PONG/);
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
