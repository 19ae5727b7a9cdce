/**
 * Filesystem operations Node has no API for: character devices (overlay whiteouts), FIFOs and
 * extended attributes. They run coreutils `mknod`/`mkfifo` and attr's `setfattr` in batches through
 * one `/bin/sh` per batch, with paths passed as arguments (never interpolated into the script).
 * Synchronous: called from the unpack worker thread at the end of a layer.
 * Callers guarantee every parent of every path is a real directory inside the layer being written.
 */
import { execFileSync } from 'node:child_process';

const BATCH = 500;

/** strerror() texts of the errors a caller tells apart, by code. */
const ERRNO_TEXT: Record<string, string> = { ENOSPC: 'No space left on device', EDQUOT: 'Disk quota exceeded' };

function runBatches(what: string, script: string, args: string[], perItem: number): void {
  const step = BATCH * perItem;
  for (let i = 0; i < args.length; i += step) {
    try {
      execFileSync('/bin/sh', ['-c', script, 'sh', ...args.slice(i, i + step)], { stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 1 << 20 });
    } catch (e) {
      const stderr = String((e as { stderr?: Buffer }).stderr ?? '').trim();
      const failed: NodeJS.ErrnoException = new Error(`${what} failed: ${stderr || (e as Error).message}`, { cause: e });
      // The tools' errno, as Node's own calls give it: a full disk must read as one (image-puller.ts
      // outOfDisk: evict and try again), not as an error of no kind.
      const code = Object.entries(ERRNO_TEXT).find(([, text]) => stderr.endsWith(`: ${text}`))?.[0];
      if (code) failed.code = code;
      throw failed;
    }
  }
}

/** overlayfs whiteouts: character devices 0:0, mode 0 (they hide the same name in lower layers). */
export function makeWhiteouts(paths: string[]): void {
  runBatches('mknod', 'for p do mknod -m 000 "$p" c 0 0 || exit 1; done', paths, 1);
}

export function makeFifos(fifos: Array<{ path: string; mode: number }>): void {
  // Permission bits only: mkfifo refuses set-id and sticky bits, which mean nothing on a FIFO.
  const args = fifos.flatMap((f) => [(f.mode & 0o777).toString(8), f.path]);
  runBatches('mkfifo', 'while [ $# -gt 0 ]; do mkfifo -m "$1" "$2" || exit 1; shift 2; done', args, 2);
}

/** Sets xattrs without following symlinks; values are raw bytes. */
export function setXattrs(items: Array<{ path: string; name: string; value: Buffer }>): void {
  // `-v 0s` (empty base64) is silently ignored by setfattr: an empty value is passed as "".
  const args = items.flatMap((x) => [x.name, x.value.length ? '0s' + x.value.toString('base64') : '', x.path]);
  runBatches('setfattr', 'while [ $# -gt 0 ]; do setfattr -h -n "$1" -v "$2" -- "$3" || exit 1; shift 3; done', args, 3);
}

export const OVERLAY_OPAQUE_XATTR = 'trusted.overlay.opaque';
