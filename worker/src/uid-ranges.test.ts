/**
 * Host uid ranges claimed per worker on a host (worker/src/uid-ranges.ts): two workers never run
 * jobs as the same host users. Other workers are real processes (test/fixtures/claim-uids.ts)
 * claiming in a directory of this test's own.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { claimUidRange, FIRST_AUTO_BASE, UIDS_PER_SLOT } from './uid-ranges.ts';

const fixture = join(import.meta.dirname, '..', '..', 'test', 'fixtures', 'claim-uids.ts');
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) c.kill('SIGKILL');
});

interface Claimed { base?: number; end?: number; refused?: string; child: ChildProcess }

/** Another worker process claiming in `dir`; resolves with its claim (it holds it until stop) or its refusal. */
function otherWorker(dir: string, base: number | 'auto', slots: number, id: string): Promise<Claimed> {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture, dir, String(base), String(slots), id], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve({ ...(JSON.parse(out) as object), child });
    });
    child.once('exit', (code) => out.includes('\n') || reject(new Error(`claim-uids exited ${code} without an answer`)));
  });
}
const exited = (c: ChildProcess) => new Promise<void>((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', () => r())));

const scratch = () => mkdtempSync(join(tmpdir(), 'sbx-uid-ranges-'));

test('auto: the lowest range from 100000 that no live worker holds; a worker\'s range is free again once it stops', async () => {
  const dir = scratch();
  try {
    const a = await otherWorker(dir, 'auto', 4, 'a');
    assert.deepEqual([a.base, a.end], [FIRST_AUTO_BASE, FIRST_AUTO_BASE + 4 * UIDS_PER_SLOT]);
    const mine = await claimUidRange({ dir, base: 'auto', slots: 2, workerId: 'me' });
    assert.deepEqual([mine.base, mine.end], [a.end, a.end! + 2 * UIDS_PER_SLOT], 'just past the other worker\'s');
    mine.release();
    a.child.stdin!.end(); // a stops: its claim is released
    await exited(a.child);
    const again = await claimUidRange({ dir, base: 'auto', slots: 2, workerId: 'me' });
    assert.equal(again.base, FIRST_AUTO_BASE);
    again.release();
    assert.deepEqual(readdirSync(dir), [], 'nothing left behind');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a given SBX_UID_BASE overlapping a live worker\'s range: refused, naming that worker; one just past it is taken', async () => {
  const dir = scratch();
  try {
    const a = await otherWorker(dir, 200_000, 3, 'host-a/1');
    await assert.rejects(claimUidRange({ dir, base: 200_000 + 3 * UIDS_PER_SLOT - 1, slots: 1, workerId: 'me' }), (e: Error) => {
      assert.equal(e.name, 'ConfigError');
      assert.match(e.message, new RegExp(`SBX_UID_BASE="396607": its host uids 396607–462142 \\(1 slots\\) overlap those of another worker on this host: worker host-a/1 \\(pid ${a.child.pid}\\) holds 200000–396607`));
      return true;
    });
    const next = await claimUidRange({ dir, base: 200_000 + 3 * UIDS_PER_SLOT, slots: 1, workerId: 'me' });
    assert.equal(next.base, 396_608);
    next.release();
    // The refused claim left no file: only a's is there.
    assert.equal(readdirSync(dir).length, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a crashed worker\'s claim (SIGKILL) is stale: its range is taken and its file removed', async () => {
  const dir = scratch();
  try {
    const a = await otherWorker(dir, 'auto', 1, 'crashed');
    a.child.kill('SIGKILL');
    await exited(a.child);
    assert.equal(readdirSync(dir).length, 1, 'the crashed worker\'s claim is still there');
    const mine = await claimUidRange({ dir, base: FIRST_AUTO_BASE, slots: 1, workerId: 'me' });
    assert.equal(mine.base, FIRST_AUTO_BASE);
    const left = readdirSync(dir);
    assert.ok(left.length === 1 && left[0]!.startsWith(`${process.pid}-`), `only this process's claim: ${left.join(' ')}`);
    mine.release();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('eight workers claiming auto at once get eight ranges, none overlapping', async () => {
  const dir = scratch();
  try {
    const all = await Promise.all(Array.from({ length: 8 }, (_, i) => otherWorker(dir, 'auto', 2, `w${i}`)));
    assert.deepEqual(all.map((c) => c.refused).filter(Boolean), []);
    const ranges = all.map((c) => [c.base!, c.end!] as const).sort((x, y) => x[0] - y[0]);
    for (let i = 1; i < ranges.length; i++) assert.ok(ranges[i]![0] >= ranges[i - 1]![1], `overlap: ${JSON.stringify(ranges)}`);
    for (const c of all) c.child.stdin!.end();
    await Promise.all(all.map((c) => exited(c.child)));
    assert.deepEqual(readdirSync(dir), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a range past the last host uid is refused', async () => {
  const dir = scratch();
  try {
    await assert.rejects(claimUidRange({ dir, base: 4_000_000_000, slots: 5000, workerId: 'me' }), /SBX_UID_BASE="4000000000": 5000 slots need host uids up to 4327679999, past the last one/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
