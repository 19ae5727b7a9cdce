/**
 * The host uids a worker's jobs run as (P9: slot s as SBX_UID_BASE + s·65536 … + 65535), claimed
 * for the worker's lifetime so that two workers on one host never share them. Sharing them, two
 * tenants' jobs ran at once as the same host users, sharing what the kernel counts per user
 * (inotify instances and watches, key quotas) and the same owner on anything both could reach.
 * Nothing refused it: every worker defaulted to 100000.
 *
 * A claim is a file in a host-wide directory (/run/sbx/uid-ranges: a tmpfs, gone at boot) named
 * after its process (pid and start time, so a recycled pid is not taken for its owner) holding its
 * range. A claim whose process is gone is stale: ignored and removed. To claim, a worker writes its
 * file first and then reads the others: it keeps its claim only if no live one overlaps it. Of two
 * workers claiming at once, at least the later reader sees the other's file (each wrote before
 * reading), so two never both keep an overlapping claim; both may yield, and try again.
 *
 * SBX_UID_BASE=auto (the default) takes the lowest free range from 100000 on; a number takes that
 * range or refuses to start (ConfigError, exit 2), naming the worker that holds it.
 *
 * Liveness is judged by pid and start time in this process's pid namespace: workers in other pid
 * namespaces (other containers) cannot be told apart from dead ones, so the claims directory is
 * not shared between containers, and those need SBX_UID_BASE set apart (README).
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../../core/src/config.ts';
import { processGone, SELF_START } from './process-alive.ts';

/** Host uids one slot maps (native/src/userns.h kRange). */
export const UIDS_PER_SLOT = 65536;
/** Where SBX_UID_BASE=auto starts looking (the fixed default before there was `auto`). */
export const FIRST_AUTO_BASE = 100_000;
/** The highest host uid a range may reach: (uid_t)-1 is no uid. */
const MAX_UID = 0xffff_fffe;
export const DEFAULT_CLAIMS_DIR = '/run/sbx/uid-ranges';

export interface UidClaim {
  /** The first host uid of slot 0. */
  base: number;
  /** One past the last host uid of the last slot. */
  end: number;
  /** Removes the claim (at the worker's stop; a crashed worker's claim is stale once it is gone). */
  release(): void;
}

interface ClaimRecord {
  base: number;
  end: number;
  workerId: string;
  pid: number;
}

const CLAIM_NAME = /^(\d+)-(\d+)\.claim(\.tmp)?$/;

/** The live claims of other processes in `dir` (stale ones are removed). */
function liveClaims(dir: string, own: string): ClaimRecord[] {
  const live: ClaimRecord[] = [];
  for (const name of readdirSync(dir)) {
    const m = CLAIM_NAME.exec(name);
    if (!m || name === own) continue;
    const path = join(dir, name);
    if (processGone(Number(m[1]), m[2]!)) {
      rmSync(path, { force: true }); // its process is gone: nobody can write this name again
      continue;
    }
    if (m[3]) continue; // being written by its live process
    try {
      const r = JSON.parse(readFileSync(path, 'utf8')) as ClaimRecord;
      if (Number.isSafeInteger(r.base) && Number.isSafeInteger(r.end)) live.push(r);
    } catch {
      // removed meanwhile
    }
  }
  return live;
}

const overlapping = (a: { base: number; end: number }, b: { base: number; end: number }) => a.base < b.end && b.base < a.end;
const describe = (r: ClaimRecord) => `worker ${r.workerId} (pid ${r.pid}) holds ${r.base}–${r.end - 1}`;

export interface ClaimOptions {
  /** SBX_UID_BASE: a number, or 'auto'. */
  base: number | 'auto';
  slots: number;
  workerId: string;
  dir?: string;
  /** Tries when claims race (auto only). */
  attempts?: number;
}

/** Claims the host uids of `slots` slots from `base` (or the lowest free ones, for 'auto'). */
export async function claimUidRange(o: ClaimOptions): Promise<UidClaim> {
  const dir = o.dir ?? DEFAULT_CLAIMS_DIR;
  const size = o.slots * UIDS_PER_SLOT;
  if (o.base !== 'auto' && o.base + size - 1 > MAX_UID) {
    throw new ConfigError([`SBX_UID_BASE=${JSON.stringify(String(o.base))}: ${o.slots} slots need host uids up to ${o.base + size - 1}, past the last one (${MAX_UID}); lower it or SBX_WORKER_SLOTS`]);
  }
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new ConfigError([`SBX_UID_BASE: cannot keep this worker's claim on its host uids in ${dir} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): it makes sure two workers on this host never run jobs as the same host users`]);
  }
  const own = `${process.pid}-${SELF_START}.claim`;
  const path = join(dir, own);
  const write = (base: number) => {
    const record: ClaimRecord = { base, end: base + size, workerId: o.workerId, pid: process.pid };
    writeFileSync(`${path}.tmp`, JSON.stringify(record), { mode: 0o600 });
    renameSync(`${path}.tmp`, path); // whole or not at all
  };
  const attempts = o.attempts ?? 20;
  for (let attempt = 1; ; attempt++) {
    let base: number;
    if (o.base === 'auto') {
      base = FIRST_AUTO_BASE;
      const others = liveClaims(dir, own).sort((a, b) => a.base - b.base);
      for (const c of others) if (overlapping({ base, end: base + size }, c)) base = Math.max(base, c.end);
      if (base + size - 1 > MAX_UID) throw new ConfigError([`SBX_UID_BASE=auto: no ${o.slots} × ${UIDS_PER_SLOT} free host uids left on this host`]);
    } else {
      base = o.base;
    }
    write(base);
    const clash = liveClaims(dir, own).find((c) => overlapping({ base, end: base + size }, c));
    if (!clash) return { base, end: base + size, release: () => rmSync(path, { force: true }) };
    rmSync(path, { force: true });
    if (o.base !== 'auto') {
      throw new ConfigError([`SBX_UID_BASE=${JSON.stringify(String(o.base))}: its host uids ${base}–${base + size - 1} (${o.slots} slots) overlap those of another worker on this host: ${describe(clash)}; jobs of both would run as the same host users. Give each worker its own range (at least ${UIDS_PER_SLOT} × SBX_WORKER_SLOTS apart) or SBX_UID_BASE=auto`]);
    }
    if (attempt >= attempts) throw new ConfigError([`SBX_UID_BASE=auto: could not claim free host uids after ${attempts} tries (other workers claiming at the same time)`]);
    await new Promise((r) => setTimeout(r, 5 + Math.random() * 20 * attempt));
  }
}
