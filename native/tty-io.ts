// The launcher's side of a job's pseudo-terminal (tty jobs): output read from the master through a
// libuv tty stream, input written to a second fd of the same master with non-blocking writes (a
// full terminal input buffer never blocks the event loop: writes wait and retry), window sizes
// applied with TIOCSWINSZ. Imported by index.ts only.
import fs from 'node:fs';
import type { Readable } from 'node:stream';
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

export function openJobTty(readFd: number, writeFd: number, resizeFd: (fd: number, rows: number, cols: number) => void): JobTty {
  const output = new tty.ReadStream(readFd);
  let closed = false;
  const closeWriter = (): void => {
    if (closed) return;
    closed = true;
    fs.close(writeFd, () => {});
  };
  // EIO from a master = every slave fd is closed (the job ended): that is the end of output.
  output.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EIO') output.emit('tty-error', e);
    output.push(null);
  });
  output.on('close', closeWriter);
  output.on('end', closeWriter);

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
