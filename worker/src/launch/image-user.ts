/**
 * Resolves an image's USER ('', 'uid', 'uid:gid', 'name', 'name:group', 'name:gid', ...) to numeric
 * ids through the image's own /etc/passwd and /etc/group, as Docker/runc do.
 *
 * The files are looked up in the merged view of the layers without mounting them: top layer first,
 * honouring overlay whiteouts (char 0:0) and opaque directories, and resolving symlinks *inside the
 * image* (an absolute target is relative to the image root). Every path is walked one component at a
 * time with lstat, and the file is opened with O_NOFOLLOW, so nothing outside the layer dirs is read.
 */
import { constants, type Stats } from 'node:fs';
import { lstat, open, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { SbxError } from '../../../core/src/errors.ts';
import { JOB_ID_RANGE } from '../../../core/src/launch-bounds.ts';
import { layerMetaPath, type LayerMeta } from '../images/cache/cache-index.ts';

export interface ResolvedUser {
  uid: number;
  gid: number;
  /** Supplementary groups (including gid). */
  groups: number[];
  /** The home directory of its /etc/passwd entry, or null (no entry, or none given). */
  home: string | null;
}

const MAX_SYMLINK_HOPS = 40;
const MAX_ID_FILE_BYTES = 4 * 1024 * 1024;
const MAX_ID = 0xfffffffe;
/** Supplementary groups the launcher sets at most (native/src/spec.cc). */
const MAX_GROUPS = 64;

/** A user that cannot be the job's (invalid_request, path user); `detail` says why, without the user. */
export class UnresolvableUserError extends SbxError {
  constructor(readonly user: string, readonly detail: string) {
    const message = `user ${JSON.stringify(user)}: ${detail}`;
    super('invalid_request', message, { details: [{ path: 'user', message }] });
  }
}

function invalidUser(user: string, detail: string): UnresolvableUserError {
  return new UnresolvableUserError(user, detail);
}

async function lstatOrNull(path: string): Promise<Stats | null> {
  try {
    return await lstat(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw e;
  }
}

const isWhiteout = (st: Stats) => st.isCharacterDevice() && st.rdev === 0;

/** Opaque directories of a layer, from the meta the image store wrote beside it. */
class OpaqueDirs {
  private readonly cache = new Map<string, Set<string>>();

  async has(layerDir: string, rel: string): Promise<boolean> {
    let set = this.cache.get(layerDir);
    if (!set) {
      try {
        const meta = JSON.parse(await readFile(layerMetaPath(layerDir), 'utf8')) as Partial<LayerMeta>;
        set = new Set(meta.opaqueDirs ?? []);
      } catch {
        set = new Set();
      }
      this.cache.set(layerDir, set);
    }
    return set.has(rel);
  }
}

type Found = { kind: 'file'; path: string } | { kind: 'missing' };

/**
 * Finds `path` (absolute inside the image) in the merged view of `layersTopFirst`. Returns the host
 * path of the regular file that would be visible there, or missing.
 */
async function findInLayers(layersTopFirst: string[], path: string, opaque: OpaqueDirs, hops = 0): Promise<Found> {
  if (hops > MAX_SYMLINK_HOPS) return { kind: 'missing' };
  const components = path.split('/').filter((c) => c !== '' && c !== '.');
  let visible = layersTopFirst;
  const cur: string[] = [];
  for (let i = 0; i < components.length; i++) {
    const c = components[i]!;
    if (c === '..') {
      cur.pop();
      return findInLayers(layersTopFirst, [...cur, ...components.slice(i + 1)].join('/'), opaque, hops + 1);
    }
    const rel = [...cur, c].join('/');
    const last = i === components.length - 1;
    let next: string[] | null = null;
    for (let l = 0; l < visible.length; l++) {
      const layer = visible[l]!;
      const st = await lstatOrNull(join(layer, rel));
      if (st === null) continue;
      if (isWhiteout(st)) return { kind: 'missing' };
      if (st.isSymbolicLink()) {
        const target = await readlink(join(layer, rel));
        const base = target.startsWith('/') ? [] : cur;
        return findInLayers(layersTopFirst, [...base, target, ...components.slice(i + 1)].join('/'), opaque, hops + 1);
      }
      if (st.isFile()) return last ? { kind: 'file', path: join(layer, rel) } : { kind: 'missing' };
      if (!st.isDirectory()) return { kind: 'missing' };
      next = await lowerDirectories(visible.slice(l), rel, opaque);
      break;
    }
    if (next === null || last) return { kind: 'missing' };
    visible = next;
    cur.push(c);
  }
  return { kind: 'missing' };
}

/** From the topmost layer (where `rel` is a directory) down: the layers whose `rel` merges into it. */
async function lowerDirectories(layers: string[], rel: string, opaque: OpaqueDirs): Promise<string[]> {
  const out: string[] = [];
  for (const layer of layers) {
    const st = await lstatOrNull(join(layer, rel));
    if (st === null) continue;
    if (!st.isDirectory()) break;
    out.push(layer);
    if (await opaque.has(layer, rel)) break;
  }
  return out;
}

/** Reads an image file found by findInLayers without following a symlink swapped in at the end. */
async function readImageFile(layerDirs: string[], path: string, opaque: OpaqueDirs): Promise<string | null> {
  const found = await findInLayers([...layerDirs].reverse(), path, opaque);
  if (found.kind === 'missing') return null;
  const file = await open(found.path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const st = await file.stat();
    if (!st.isFile() || st.size > MAX_ID_FILE_BYTES) return null;
    return await file.readFile('utf8');
  } finally {
    await file.close();
  }
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

function parseId(text: string): number | null {
  if (!/^[0-9]{1,10}$/.test(text)) return null;
  const n = Number(text);
  return n <= MAX_ID ? n : null;
}

function parsePasswd(text: string): PasswdEntry[] {
  return text
    .split('\n')
    .map((line) => line.split(':'))
    .filter((f) => f.length >= 4 && f[0] !== '' && !f[0]!.startsWith('#'))
    .map((f) => ({ name: f[0]!, uid: parseId(f[2]!), gid: parseId(f[3]!), home: f[5] ?? '' }))
    .filter((e): e is PasswdEntry => e.uid !== null && e.gid !== null);
}

function parseGroup(text: string): GroupEntry[] {
  return text
    .split('\n')
    .map((line) => line.split(':'))
    .filter((f) => f.length >= 3 && f[0] !== '' && !f[0]!.startsWith('#'))
    .map((f) => ({ name: f[0]!, gid: parseId(f[2]!), members: (f[3] ?? '').split(',').filter(Boolean) }))
    .filter((e): e is GroupEntry => e.gid !== null);
}

export async function resolveUser(layerDirs: string[], user: string): Promise<ResolvedUser> {
  const spec = user.trim();
  const colon = spec.indexOf(':');
  const userPart = colon === -1 ? spec : spec.slice(0, colon);
  const groupPart = colon === -1 ? null : spec.slice(colon + 1);
  if (userPart === '' && (groupPart === null || groupPart === '')) return { uid: 0, gid: 0, groups: [0], home: null };
  if (userPart === '') throw invalidUser(user, 'names a group but no user');

  const opaque = new OpaqueDirs();
  const passwd = parsePasswd((await readImageFile(layerDirs, '/etc/passwd', opaque)) ?? '');
  const uidNumber = parseId(userPart);
  const entry = uidNumber !== null ? passwd.find((e) => e.uid === uidNumber) : passwd.find((e) => e.name === userPart);
  if (!entry && uidNumber === null) throw invalidUser(user, `no user named ${JSON.stringify(userPart)} in the image's /etc/passwd`);
  const uid = entry?.uid ?? uidNumber!;
  const home = entry?.home.startsWith('/') ? entry.home : null;

  const needGroups = groupPart === null || groupPart === '' || parseId(groupPart) === null || entry !== undefined;
  const groups = needGroups ? parseGroup((await readImageFile(layerDirs, '/etc/group', opaque)) ?? '') : [];
  let gid = entry?.gid ?? 0;
  if (groupPart !== null && groupPart !== '') {
    const gidNumber = parseId(groupPart);
    const group = gidNumber !== null ? undefined : groups.find((g) => g.name === groupPart);
    if (gidNumber === null && !group) throw invalidUser(user, `no group named ${JSON.stringify(groupPart)} in the image's /etc/group`);
    gid = gidNumber ?? group!.gid;
    return mappable(user, { uid, gid, groups: [gid], home });
  }
  const memberOf = entry ? groups.filter((g) => g.members.includes(entry.name)).map((g) => g.gid) : [];
  return mappable(user, { uid, gid, groups: [...new Set([gid, ...memberOf])], home });
}

/**
 * A job's user namespace maps ids 0 to JOB_ID_RANGE - 1 (P9): a uid or gid past them cannot be the
 * job's. A supplementary group past them is left out: inside the job, files of that gid show as the
 * overflow group anyway, so being in it would give nothing.
 */
function mappable(user: string, resolved: ResolvedUser): ResolvedUser {
  const range = `0-${JOB_ID_RANGE - 1}, the ids a job's user namespace maps`;
  if (resolved.uid >= JOB_ID_RANGE) throw invalidUser(user, `its uid ${resolved.uid} is outside ${range}`);
  if (resolved.gid >= JOB_ID_RANGE) throw invalidUser(user, `its gid ${resolved.gid} is outside ${range}`);
  const groups = resolved.groups.filter((g) => g < JOB_ID_RANGE);
  if (groups.length > MAX_GROUPS) throw invalidUser(user, `is in ${groups.length} groups in the image's /etc/group; a job's user may be in at most ${MAX_GROUPS}`);
  return { ...resolved, groups };
}
