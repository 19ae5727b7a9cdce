/**
 * A small file system of the test's own, for a worker's state directory that runs out of space: a
 * tmpfs of `mib` MiB, or a loop-mounted ext4 (its image a sparse file beside the mount point). fill()
 * writes a file until the file system is full, as another process of the host would; unfill()
 * removes it. unmount() (lazy: a worker killed mid-pull may still hold a file there) removes all of it.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SmallDisk {
  /** Where it is mounted. */
  dir: string;
  /** Fills it from outside sbx (a file written until ENOSPC). */
  fill(): void;
  /** Removes what fill() wrote. */
  unfill(): void;
  /** Free bytes and inodes, as statfs says. */
  free(): { bytes: number; inodes: number };
  unmount(): void;
}

export function mountSmallDisk(opts: { mib: number; fs?: 'tmpfs' | 'ext4'; inodes?: number }): SmallDisk {
  const base = mkdtempSync(join(tmpdir(), 'sbx-small-disk-'));
  const dir = join(base, 'mnt');
  mkdirSync(dir);
  const filler = join(dir, 'filler');
  try {
    if (opts.fs === 'ext4') {
      const image = join(base, 'fs.img');
      execFileSync('truncate', ['-s', `${opts.mib}M`, image]);
      execFileSync('mkfs.ext4', ['-q', '-m', '0', ...(opts.inodes ? ['-N', String(opts.inodes)] : []), image]);
      execFileSync('mount', ['-o', 'loop', image, dir]);
    } else {
      execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${opts.mib}m${opts.inodes ? `,nr_inodes=${opts.inodes}` : ''}`, 'sbx-small-disk', dir]);
    }
  } catch (e) {
    rmSync(base, { recursive: true, force: true });
    throw e;
  }
  return {
    dir,
    fill: () => {
      spawnSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=64k', 'oflag=append', 'conv=notrunc'], { stdio: 'ignore' });
    },
    unfill: () => rmSync(filler, { force: true }),
    free: () => {
      const s = statfsSync(dir);
      return { bytes: s.bavail * s.bsize, inodes: s.ffree };
    },
    unmount: () => {
      spawnSync('umount', ['-l', dir]); // the loop device goes with it (mount -o loop sets autoclear)
      rmSync(base, { recursive: true, force: true });
    },
  };
}
