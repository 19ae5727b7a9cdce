/**
 * The worker's state directory (SBX_STATE_DIR): `images/` (the image cache) and `launcher/` (the
 * native launcher's state). Cached layers keep setuid bits and security.* file capabilities, as
 * they must for the jobs that run them; so nothing under the state directory may be reachable by
 * anyone but the worker's own user (root): the directory is 0700 and owned by that user, and an
 * existing one with looser modes or another owner is tightened at start, saying so in the log.
 *
 * Jobs are unaffected: the launcher opens the layers as host root (open_tree + idmapped mounts)
 * before the job enters its user namespace; the job only ever sees them through its overlay.
 */
import { chmod, chown, mkdir, readdir, realpath, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { ConfigError } from '../../core/src/config.ts';

/** The mode of the state directory and of the image cache's own directories. */
export const PRIVATE_DIR_MODE = 0o700;

export interface Tightened {
  path: string;
  /** What it was: mode as octal text, owner uid:gid. */
  mode: string;
  owner: string;
}

/** What prepareStateDir logs through (a pino Logger is one). */
export interface StateDirLogger {
  warn(obj: object, msg: string): void;
}

const octal = (mode: number) => (mode & 0o7777).toString(8).padStart(4, '0');

/** What a state directory may hold; anything else means SBX_STATE_DIR names a shared directory. */
const STATE_DIR_ENTRIES = new Set(['images', 'launcher', 'lost+found']);

/**
 * Creates `path` (its missing ancestors too) as a directory only this process's user may enter,
 * or makes an existing one so. Returns what it was when that had to change. With `ownEntries`, a
 * directory to tighten that holds anything else is refused (never chmod /var/lib by mistake).
 */
export async function ensurePrivateDir(path: string, ownEntries?: ReadonlySet<string>): Promise<Tightened | null> {
  await mkdir(path, { recursive: true, mode: PRIVATE_DIR_MODE }).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'EEXIST') throw e; // a file there: reported below
  });
  const st = await stat(path);
  if (!st.isDirectory()) throw new ConfigError([`${path} is not a directory`]);
  const uid = process.getuid?.() ?? st.uid;
  const gid = process.getgid?.() ?? st.gid;
  const loose = (st.mode & 0o7777) !== PRIVATE_DIR_MODE;
  const foreign = st.uid !== uid || st.gid !== gid;
  if (!loose && !foreign) return null;
  const others = ownEntries ? (await readdir(path)).filter((name) => !ownEntries.has(name)) : [];
  if (others.length) {
    throw new ConfigError([`SBX_STATE_DIR=${path} is ${octal(st.mode)} ${st.uid}:${st.gid} and holds ${others.slice(0, 3).join(', ')}${others.length > 3 ? ', …' : ''}: sbx makes its state directory 0700 root-only, so give it a directory of its own`]);
  }
  // Owner first: until the chmod below, the old owner could still change the mode back.
  if (foreign) await chown(path, uid, gid);
  await chmod(path, PRIVATE_DIR_MODE);
  return { path, mode: octal(st.mode), owner: `${st.uid}:${st.gid}` };
}

/**
 * Ancestors another user could rename or replace the state directory through: not owned by root
 * (or us), or writable by group/others without the sticky bit.
 */
async function unsafeAncestors(path: string): Promise<string[]> {
  const me = process.getuid?.() ?? 0;
  const out: string[] = [];
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    const st = await stat(dir);
    const writableByOthers = (st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0;
    if ((st.uid !== 0 && st.uid !== me) || writableByOthers) out.push(`${dir} (${octal(st.mode)} ${st.uid}:${st.gid})`);
    if (dir === dirname(dir)) return out;
  }
}

/**
 * Call once at worker start, before the launcher or the image store touch the directory. Missing
 * ancestors are created 0755 (they are ordinary system directories such as /var/lib); the state
 * directory itself 0700.
 */
export async function prepareStateDir(path: string, logger: StateDirLogger): Promise<string> {
  const wanted = resolve(path);
  await mkdir(dirname(wanted), { recursive: true, mode: 0o755 });
  const real = await realpath(wanted).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return wanted;
    throw e;
  });
  const tightened = await ensurePrivateDir(real, STATE_DIR_ENTRIES);
  if (tightened) {
    logger.warn({ stateDir: real, was: tightened.mode, owner: tightened.owner, now: octal(PRIVATE_DIR_MODE) },
      `state directory ${real} was ${tightened.mode} ${tightened.owner}: tightened to ${octal(PRIVATE_DIR_MODE)}, owner ${process.getuid?.()}:${process.getgid?.()} (cached layers keep setuid bits; only root may reach them)`);
  }
  const unsafe = await unsafeAncestors(real);
  if (unsafe.length) {
    logger.warn({ stateDir: real, ancestors: unsafe }, 'a parent of the state directory is writable by other users, who could replace the state directory: use a path only root can change');
  }
  return real;
}
