/**
 * A fresh ext4 file system (with its journal, as mkfs.ext4 makes it by default and as most hosts
 * run) on a loop device, for the pull benchmark's outputs (`--fresh-fs`): file creation on this
 * VM's disk (ext4 without a journal) slows down by up to 2× for minutes after many files were
 * deleted anywhere nearby (ext4 skips recently deleted inodes only without a journal, and its search
 * for a free one dominates then), for sbx and the peers alike; on a new file system no run inherits
 * another's deletions. Needs root (losetup/mount); the image file is sparse and removed at the end.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface FreshFs {
  dir: string; // the mounted file system's root
  describe: string;
  close(): Promise<void>;
}

export async function mountFreshExt4(parentDir: string, bytes: number): Promise<FreshFs> {
  if (process.getuid?.() !== 0) throw new Error('--fresh-fs needs root (it mounts a loop device)');
  const base = await mkdtemp(join(parentDir, 'sbx-fresh-fs-'));
  const image = join(base, 'ext4.img');
  const dir = join(base, 'mnt');
  const gib = Math.max(4, Math.ceil(bytes / 2 ** 30));
  let mounted = false;
  const close = async (): Promise<void> => {
    if (mounted) {
      for (let i = 0; ; i++) {
        try {
          await run('umount', [dir]);
          break;
        } catch (e) {
          if (i >= 20) throw e;
          await new Promise((r) => setTimeout(r, 100)); // a just-closed file may hold it for a moment
        }
      }
      mounted = false;
    }
    await rm(base, { recursive: true, force: true });
  };
  try {
    await writeFile(image, '');
    await truncate(image, gib * 2 ** 30); // sparse
    // Inode tables and journal written now, so no background initialisation runs during the bench.
    await run('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0,nodiscard', image]);
    await mkdir(dir);
    await run('mount', ['-o', 'loop', image, dir]);
    mounted = true;
    return { dir, describe: `a fresh ${gib} GiB ext4 (with journal) on a loop device in ${parentDir}`, close };
  } catch (e) {
    await close().catch(() => {});
    throw new Error(`--fresh-fs: could not make and mount an ext4 file system in ${parentDir}: ${e instanceof Error ? e.message : String(e)}`);
  }
}
