// dropRestInKernel (native/src/pipe_drop.h): a job's output stream past what is kept, dropped by
// splice to /dev/null. Against real pipes from real writers: every byte counted once (what the
// stream held unread and what was spliced), the pipe closed at the end or at stop() (the writer
// then gets EPIPE: no fd of it left in this process), anything but a pipe refused and left alone.
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { dropRestInKernel, type KernelDrop } from '../index.ts';

/** This process's fds open on `file`; closes happen as the loop goes round, so looked at again for a while. */
async function fdsOn(file: string): Promise<number> {
  const count = () => fs.readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`) === file;
    } catch {
      return false; // the directory's own fd, gone
    }
  }).length;
  for (let i = 0; i < 50 && count() > 0; i++) await new Promise((ok) => setTimeout(ok, 10));
  return count();
}
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sbx-pipe-drop-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
let fifos = 0;

/**
 * `command` writing into a pipe this process reads as a net.Socket on its fd, as launch() gives a
 * job's stdout (Node's own child stdio are socket pairs, which splice cannot read): a FIFO, opened
 * here first (non-blocking: no writer yet is not an end), then by the writer.
 */
function writer(command: string): { child: ChildProcess; stdout: net.Socket; fifo: string } {
  const fifo = path.join(dir, `p${fifos++}`);
  execFileSync('mkfifo', [fifo]);
  const fd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const stdout = new net.Socket({ fd, readable: true, writable: false });
  const child = spawn('sh', ['-c', `${command} > ${fifo}`], { stdio: ['ignore', 'ignore', 'inherit'] });
  return { child, stdout, fifo };
}

test('a pipe dropped before any read: every byte the writer wrote is counted, and the pipe is gone at its end', async () => {
  const { child, stdout, fifo } = writer('head -c 50000000 /dev/zero');
  const drop = dropRestInKernel(stdout);
  assert.ok(drop, 'a pipe is taken');
  assert.ok(stdout.destroyed, 'the stream is destroyed: Node reads no more of it');
  const [code] = (await once(child, 'exit')) as [number | null];
  assert.equal(code, 0, 'the writer was not blocked or cut off');
  assert.equal(await drop.ended, 50_000_000);
  assert.equal(await fdsOn(fifo), 0, 'no fd of the pipe left');
});

test('a pipe read for a while, then dropped: what was read plus what was dropped is what was written', async () => {
  const { child, stdout } = writer('i=0; while [ $i -lt 2000 ]; do printf "%0999d\\n" $i; i=$((i+1)); done');
  let read = 0;
  let drop = null as KernelDrop | null;
  stdout.on('data', (b: Buffer) => {
    read += b.length;
    if (!drop && read >= 100_000) drop = dropRestInKernel(stdout); // taken from inside its own 'data', as the sink does
  });
  await once(child, 'exit');
  await new Promise((ok) => setTimeout(ok, 50));
  assert.ok(drop, 'taken');
  const dropped = await drop!.ended;
  assert.ok(dropped > 0, 'some of it dropped');
  assert.equal(read + dropped, 2_000_000, `read ${read} + dropped ${dropped}`);
});

test('a stream that held several chunks while paused, taken from inside the first one\'s \'data\': the chunks it held are counted once, none emitted after', async () => {
  // 30 lines, 5 ms apart: Node reads them as separate chunks and holds them while the stream is paused.
  const { child, stdout } = writer('i=0; while [ $i -lt 30 ]; do printf "%0999d\\n" $i; sleep 0.005; i=$((i+1)); done');
  stdout.pause();
  await once(child, 'exit');
  let read = 0;
  let afterDrop = 0;
  let drop = null as KernelDrop | null;
  stdout.on('data', (b: Buffer) => {
    if (drop) afterDrop += b.length;
    read += b.length;
    drop ??= dropRestInKernel(stdout);
  });
  stdout.resume();
  await new Promise((ok) => setTimeout(ok, 50));
  assert.ok(drop, 'taken');
  const dropped = await drop!.ended;
  assert.equal(afterDrop, 0, 'no chunk emitted once the stream was taken');
  assert.equal(read + dropped, 30_000, `read ${read} + dropped ${dropped}`);
});

test('lastDropAt: null until a byte is dropped, then the time of the latest drop, kept once the drop has ended', async () => {
  const { child, stdout } = writer('{ sleep 0.2; head -c 100000 /dev/zero; sleep 0.3; }');
  const drop = dropRestInKernel(stdout)!;
  await new Promise((ok) => setTimeout(ok, 50));
  assert.equal(drop.lastDropAt(), null, 'nothing dropped yet');
  await once(child, 'exit');
  const exited = Date.now();
  const at = drop.lastDropAt();
  assert.ok(at !== null && at <= exited, `last dropped at ${at}, the writer exited at ${exited}`);
  await drop.ended;
  assert.equal(drop.lastDropAt(), at, 'the same once ended');
});

test('stop() before the drop has run: what the pipe held is counted, not only what the stream had read', async () => {
  const marker = path.join(dir, `written${fifos}`);
  // 50,000 bytes fit the pipe: written at once, then the writer holds the pipe open.
  const { child, stdout } = writer(`{ head -c 50000 /dev/zero; touch ${marker}; sleep 5; }`);
  stdout.pause();
  while (!fs.existsSync(marker)) await new Promise((ok) => setTimeout(ok, 10));
  const drop = dropRestInKernel(stdout)!;
  drop.stop(); // at once: the loop has not come round to the drop
  assert.equal(await drop.ended, 50_000, 'what the stream had read and what the pipe held');
  child.kill();
  await once(child, 'exit');
});

test('stop(): the drop ends with the bytes so far, the pipe is closed (the writer dies of SIGPIPE), soFar grew meanwhile', async () => {
  const { child, stdout, fifo } = writer('exec yes');
  const drop = dropRestInKernel(stdout)!;
  await new Promise((ok) => setTimeout(ok, 100));
  const early = drop.soFar();
  await new Promise((ok) => setTimeout(ok, 100));
  assert.ok(drop.soFar() > early && early > 0, `soFar ${early} then ${drop.soFar()}`);
  drop.stop();
  const bytes = await drop.ended;
  assert.ok(bytes >= early, `ended with ${bytes}`);
  const [, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  assert.equal(signal, 'SIGPIPE', 'the writer found the pipe closed');
  drop.stop(); // again: nothing
  assert.equal(await drop.ended, bytes);
  assert.equal(await fdsOn(fifo), 0, 'no fd of the pipe left');
});

test('not a pipe (a TCP socket) or a destroyed stream: refused, the stream left as it was', async () => {
  const server = net.createServer((c) => c.end('hello'));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const socket = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await once(socket, 'connect');
  assert.equal(dropRestInKernel(socket), null);
  assert.equal(socket.destroyed, false);
  const [data] = (await once(socket, 'data')) as [Buffer];
  assert.equal(data.toString(), 'hello', 'still read as before');
  socket.destroy();
  server.close();
  const { child, stdout } = writer('head -c 10 /dev/zero');
  stdout.resume();
  await once(stdout, 'end');
  stdout.destroy();
  assert.equal(dropRestInKernel(stdout), null);
  await once(child, 'exit');
});

test('a worker thread that ends with drops running: their pipes closed, the process goes on; their handles mean nothing to another thread', async () => {
  // In a process of its own: before, the thread's loop was closed with the drop's handles open and
  // Node aborted the whole process ("uv_loop_close() while having open handles").
  const addon = path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'build', 'Release', 'sbx_native.node');
  const script = `
    import { Worker } from 'node:worker_threads';
    import { once } from 'node:events';
    import fs from 'node:fs';
    import { createRequire } from 'node:module';
    const native = createRequire(import.meta.url)(${JSON.stringify(addon)});
    const fifo = ${JSON.stringify(path.join(dir, 'thread-'))};
    const onPipe = () => fs.readdirSync('/proc/self/fd').filter((f) => { try { return fs.readlinkSync('/proc/self/fd/' + f).startsWith(fifo); } catch { return false; } }).length;
    const thread = \`
      const native = require(\${JSON.stringify(${JSON.stringify(addon)})});
      const { execFileSync } = require('node:child_process');
      const fs = require('node:fs');
      const { parentPort, threadId } = require('node:worker_threads');
      const p = \${JSON.stringify(fifo)} + threadId;
      execFileSync('mkfifo', [p]);
      const fd = fs.openSync(p, fs.constants.O_RDWR);
      const handle = native.dropPipe(fd, () => {});
      fs.writeSync(fd, Buffer.alloc(1000));
      fs.closeSync(fd);
      parentPort.postMessage(handle);
    \`;
    for (let i = 0; i < 3; i++) {
      const w = new Worker(thread, { eval: true, execArgv: [] }); // not this process's --input-type=module
      const [handle] = await once(w, 'message');
      const running = onPipe();
      const elsewhere = [native.droppedSoFar(handle), native.droppedAgoMs(handle), native.stopDrop(handle)];
      await w.terminate();
      console.log(JSON.stringify({ running, elsewhere, after: onPipe() }));
    }
    console.log('alive');`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d));
  child.stderr.on('data', (d: Buffer) => (err += d));
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  assert.equal(signal, null, `the process was killed by ${signal}: ${err}`);
  assert.equal(code, 0, err);
  const lines = out.trim().split('\n');
  assert.equal(lines.pop(), 'alive');
  assert.equal(lines.length, 3);
  for (const line of lines) assert.deepEqual(JSON.parse(line), { running: 1, elsewhere: [-1, -1, -1], after: 0 }, line);
});
