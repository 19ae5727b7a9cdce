// LaunchSpec.listenPort: a listening socket inside the job's own network namespace (the worker's
// egress proxy serves jobs through it). Only the job can reach it, it exists before the command
// runs, and closing it is all it takes to let the namespace go.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { describe, it } from 'node:test';
import { closePool, type Launched, type LaunchOptions } from '../index.ts';
import { baseSpec, poolReaches, run, uniqueParent, useBusyboxFixture } from './helpers.ts';

const parent = uniqueParent('listen');
const opts: LaunchOptions = { cgroupParent: parent, trace: true };

/** The socket inode behind fd (socket:[N]). */
function socketInode(fd: number): string {
  const link = fs.readlinkSync(`/proc/self/fd/${fd}`);
  const m = /^socket:\[(\d+)\]$/.exec(link);
  assert.ok(m, `fd ${fd} is a socket: ${link}`);
  return m[1]!;
}

/** Inodes of the sockets listening on 127.0.0.1:port in /proc/<pid>/net/tcp (that process's network namespace). */
function listeningInodes(pid: number | 'self', port: number): string[] {
  const want = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  return fs.readFileSync(`/proc/${pid}/net/tcp`, 'utf8').split('\n').slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[1] === want && f[3] === '0A')
    .map((f) => f[9]!);
}

/** Serves the job's listener: each connection gets `greeting`. Returns the server (closed by the caller). */
function serve(j: Launched, greeting: string): net.Server {
  assert.equal(typeof j.listenFd, 'number', 'a listenPort job has its listener');
  const server = net.createServer((s) => s.end(greeting));
  server.listen({ fd: j.listenFd! });
  return server;
}

describe('listenPort: a listener in the job\'s network namespace', () => {
  const fixture = useBusyboxFixture('listen', parent, opts);

  it('the job reaches it on 127.0.0.1 from its first instruction; it lives in the job\'s namespace, not the host\'s (direct and pooled)', async () => {
    const servers: net.Server[] = [];
    const seen: { inJob: string[]; onHost: string[]; inode: string }[] = [];
    const make = () => baseSpec([fixture.rootfs], { slot: 3, listenPort: 3128, argv: ['sh', '-c', 'nc 127.0.0.1 3128 </dev/null; echo rc=$?'] });
    const serveAndNote = (i: number) => (j: Launched) => {
      const inode = socketInode(j.listenFd!);
      seen.push({ inJob: listeningInodes(j.pid, 3128), onHost: listeningInodes('self', 3128), inode });
      servers.push(serve(j, `hello ${i}\n`));
    };
    const direct = await run(make(), { ...opts, pool: false }, serveAndNote(0));
    assert.equal(direct.exit.phases?.initJobMounted, undefined, 'the direct launch made its own setup');
    closePool();
    const first = await run(make(), opts, serveAndNote(1));
    assert.ok((await poolReaches(1)) >= 1, 'a setup is made ahead');
    const pooled = await run(make(), opts, serveAndNote(2));
    assert.ok(pooled.exit.phases?.initJobMounted !== undefined, 'the last launch took a pooled setup');
    assert.deepEqual([direct, first, pooled].map((r) => r.stdout), ['hello 0\nrc=0\n', 'hello 1\nrc=0\n', 'hello 2\nrc=0\n']);
    for (const s of seen) {
      assert.deepEqual(s.inJob, [s.inode], 'the job\'s namespace has the listener');
      assert.ok(!s.onHost.includes(s.inode), 'the host\'s namespace does not');
    }
    await Promise.all(servers.map((s) => new Promise((res) => s.close(res))));
  });

  it('eight jobs at once each have their own 127.0.0.1:3128 (more than the ready network namespaces: some made on the spot); a job without listenPort has none', async () => {
    const servers: net.Server[] = [];
    const jobs = Array.from({ length: 8 }, (_, i) => i);
    const all = await Promise.all(jobs.map((i) => run(baseSpec([fixture.rootfs], { slot: 4 + i, listenPort: 3128, argv: ['sh', '-c', 'nc 127.0.0.1 3128 </dev/null'] }), { ...opts, pool: i % 2 === 0 }, (j) => {
      servers.push(serve(j, `job ${i}\n`));
    })));
    assert.deepEqual(all.map((r) => r.stdout), jobs.map((i) => `job ${i}\n`));
    await Promise.all(servers.map((s) => new Promise((res) => s.close(res))));
    const none = await run(baseSpec([fixture.rootfs], { argv: ['sh', '-c', 'nc 127.0.0.1 3128 </dev/null; echo rc=$?'] }), opts, (j) => {
      assert.equal(j.listenFd, undefined);
    });
    assert.match(none.stdout, /rc=1/);
  });

  it('a bad port is refused before anything starts', async () => {
    await assert.rejects(run(baseSpec([fixture.rootfs], { listenPort: 70000 }), opts), /listenPort/);
    await assert.rejects(run(baseSpec([fixture.rootfs], { listenPort: 0 }), opts), /listenPort/);
  });
});
