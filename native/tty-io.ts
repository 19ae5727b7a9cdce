// The launcher's side of a job's pseudo-terminal (tty jobs): output read from the master through a
// libuv tty stream, input written to a second fd of the same master with non-blocking writes (a
// full terminal input buffer never blocks the event loop: writes wait and retry), window sizes
// applied with TIOCSWINSZ. Imported by index.ts only.
//
// The end of output: libuv (Node 20's) takes a short read after POLLHUP for EOF, but a master's
// POLLHUP only says every slave fd is closed, not that the job's last bytes have been read
// (libuv/libuv#4992): 'end' can come before them. So after libuv's end (or EIO), the rest is read
// from the master until the kernel's EIO, which it returns only once nothing is left to read.
import fs from 'node:fs';
import { Readable } from 'node:stream';
import tty from 'node:tty';

export interface JobTty {
  /** Everything the job writes to its terminal (stdout and stderr together, as with `docker run -t`). */
  output: Readable;
  /** Resolves once every byte is in the terminal's input queue (in order with earlier writes). */
  write(data: Buffer | string): Promise<void>;
  /**
   * End of input: the terminal's EOF character (^D), as typed on a real terminal. After a partial
   * line (the last byte written was not a line end) twice: in canonical mode the first ^D only hands
   * the partial line to the reader, the second is the EOF.
   */
  end(): Promise<void>;
  /** TIOCSWINSZ: the kernel sends SIGWINCH to the job's foreground process group. */
  resize(rows: number, cols: number): void;
}

const RETRY_MS = 2;
/**
 * At most this much is read after libuv's end: what the terminal still holds is far less (its line
 * discipline's 4 KiB and 64 KiB of flip buffers), but a job that opens its terminal again after
 * closing it could otherwise keep the synchronous reads going.
 */
const DRAIN_MAX_BYTES = 1 << 20;

export function openJobTty(readFd: number, writeFd: number, resizeFd: (fd: number, rows: number, cols: number) => void): JobTty {
  const source = new tty.ReadStream(readFd);
  let closed = false;
  const closeWriter = (): void => {
    if (closed) return;
    closed = true;
    fs.close(writeFd, () => {});
  };
  const output = new Readable({
    read() {
      source.resume();
    },
    destroy(err, cb) {
      source.destroy();
      closeWriter();
      cb(err);
    },
  });
  source.on('data', (d: Buffer) => {
    if (!output.push(d)) source.pause();
  });
  let ending = false;
  const readRest = (): void => {
    if (ending) return;
    ending = true;
    if (!closed) drainMaster(writeFd, (d) => output.push(d));
    output.push(null);
    closeWriter();
  };
  source.on('end', readRest);
  // EIO from a master = every slave fd is closed and nothing is left (the job ended); any other
  // read error ends the output too: nothing more can be read from this terminal.
  source.on('error', readRest);

  let chain: Promise<void> = Promise.resolve();
  let partialLine = false;
  const writeAll = async (buf: Buffer): Promise<void> => {
    let off = 0;
    while (off < buf.length && !closed) {
      try {
        off += await new Promise<number>((res, rej) => fs.write(writeFd, buf, off, buf.length - off, null, (e, n) => (e ? rej(e) : res(n))));
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'EAGAIN' && code !== 'EINTR') return; // EIO/EBADF: the job is gone, input is moot
        await new Promise((r) => setTimeout(r, RETRY_MS));
      }
    }
  };
  return {
    output,
    write(data) {
      const buf = typeof data === 'string' ? Buffer.from(data) : data;
      if (buf.length > 0) partialLine = buf[buf.length - 1] !== 0x0a && buf[buf.length - 1] !== 0x0d;
      chain = chain.then(() => writeAll(buf));
      return chain;
    },
    end() {
      const eof = Buffer.from(partialLine ? [4, 4] : [4]);
      partialLine = false;
      chain = chain.then(() => writeAll(eof));
      return chain;
    },
    resize(rows, cols) {
      if (!closed) resizeFd(writeFd, rows, cols);
    },
  };
}

/** Reads what the master still holds (non-blocking) until EIO, EAGAIN (a slave open again) or DRAIN_MAX_BYTES. */
function drainMaster(fd: number, push: (d: Buffer) => void): void {
  const buf = Buffer.allocUnsafe(64 * 1024);
  for (let total = 0; total < DRAIN_MAX_BYTES;) {
    let n: number;
    try {
      n = fs.readSync(fd, buf, 0, buf.length, null);
    } catch {
      return;
    }
    if (n <= 0) return;
    push(Buffer.from(buf.subarray(0, n)));
    total += n;
  }
}
