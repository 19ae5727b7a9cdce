/**
 * Reading a file the user names whose size nothing bounds (`sbx verify --file`, `--key`): at most
 * `maxBytes`, then a FileTooLargeError. readFileSync reads to the end, so /dev/zero, a FIFO fed
 * without end or a multi-GiB file took the CLI's memory until the kernel or V8 stopped it.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { CliError } from './cli-error.ts';

/** More than a reader takes (`code` is stable: `file_too_large`). */
export class FileTooLargeError extends CliError {
  readonly code = 'file_too_large';
  constructor(readonly maxBytes: number, what: string) {
    super(`is larger than ${what} reads: at most ${formatCap(maxBytes)}`);
    this.name = 'FileTooLargeError';
  }
}

/** `path`'s bytes as UTF-8, if there are at most `maxBytes` of them; `what` names the reader in the error. */
export function readCappedFile(path: string, maxBytes: number, what: string): string {
  const fd = openSync(path, 'r');
  try {
    // A regular file says its size: one too large is refused unread (a sparse file reads as zeros).
    const st = fstatSync(fd);
    if (st.isFile() && st.size > maxBytes) throw new FileTooLargeError(maxBytes, what);
    const chunks: Buffer[] = [];
    let total = 0;
    // One byte past the cap tells a file of exactly maxBytes from a longer one.
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(1 << 20, maxBytes + 1 - total));
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      chunks.push(chunk.subarray(0, n));
      total += n;
      if (total > maxBytes) throw new FileTooLargeError(maxBytes, what);
    }
    return Buffer.concat(chunks, total).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

function formatCap(bytes: number): string {
  return bytes % 2 ** 20 === 0 ? `${bytes / 2 ** 20} MiB` : `${bytes} bytes`;
}
