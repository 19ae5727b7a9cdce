/** The launcher benches' rootfs: a static busybox as /bin/true and /bin/sh, and the usual mount points. */
import fs from 'node:fs';
import path from 'node:path';

export function buildBusyboxRootfs(dir: string): void {
  fs.mkdirSync(path.join(dir, 'bin'), { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(dir, 'bin', 'busybox'));
  fs.chmodSync(path.join(dir, 'bin', 'busybox'), 0o755);
  for (const a of ['true', 'sh']) fs.symlinkSync('busybox', path.join(dir, 'bin', a));
  for (const d of ['proc', 'dev', 'sys', 'tmp', 'etc']) fs.mkdirSync(path.join(dir, d), { recursive: true });
}
