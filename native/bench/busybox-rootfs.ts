/** The launcher benches' rootfs: a static busybox as /bin/true and /bin/sh, and the usual mount points. */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export function buildBusyboxRootfs(dir: string): void {
  fs.mkdirSync(path.join(dir, 'bin'), { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(dir, 'bin', 'busybox'));
  fs.chmodSync(path.join(dir, 'bin', 'busybox'), 0o755);
  for (const a of ['true', 'sh']) fs.symlinkSync('busybox', path.join(dir, 'bin', a));
  for (const d of ['proc', 'dev', 'sys', 'tmp', 'etc']) fs.mkdirSync(path.join(dir, d), { recursive: true });
}

/**
 * The launcher benches' `--command`: `true` (the default) is busybox's /bin/true; `nop` is /bin/nop,
 * built from nop.c by installBenchCommand() (no C library: no CPUID probing at start-up, which is a
 * VM exit each on a virtual machine). Returns the command's path in the rootfs.
 */
export function benchCommandPath(name: string | undefined): string {
  if (name === undefined || name === 'true') return '/bin/true';
  if (name === 'nop') return '/bin/nop';
  throw new Error(`--command must be true or nop, not ${JSON.stringify(name)}`);
}

/** Puts benchCommandPath()'s command into a rootfs made by buildBusyboxRootfs(). */
export function installBenchCommand(rootfs: string, command: string): void {
  if (command !== '/bin/nop') return;
  const here = path.dirname(new URL(import.meta.url).pathname);
  execFileSync('gcc', ['-O2', '-static', '-nostdlib', '-o', path.join(rootfs, 'bin', 'nop'), path.join(here, 'nop.c')]);
}
