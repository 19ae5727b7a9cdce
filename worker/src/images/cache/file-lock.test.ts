import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { withFileLock } from './file-lock.ts';

test('the lock serialises holders and is removed afterwards', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sbx-lock-'));
  try {
    const path = join(dir, 'x.lock');
    const order: string[] = [];
    const hold = (name: string) =>
      withFileLock(path, async () => {
        order.push(`${name}+`);
        await new Promise((r) => setTimeout(r, 30));
        order.push(`${name}-`);
      }, { pollMs: 5 });
    await Promise.all([hold('a'), hold('b')]);
    assert.ok(order.join(',') === 'a+,a-,b+,b-' || order.join(',') === 'b+,b-,a+,a-', order.join(','));
    assert.equal(existsSync(path), false);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a lock left by a dead process or without heartbeat is broken', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sbx-lock-'));
  try {
    const dead = join(dir, 'dead.lock');
    await writeFile(dead, `999999999\n${hostname()}\n`);
    assert.equal(await withFileLock(dead, async () => 'got it', { pollMs: 5 }), 'got it');

    const silent = join(dir, 'silent.lock');
    await writeFile(silent, `1\nanother-host\n`);
    const old = new Date(Date.now() - 60_000);
    await utimes(silent, old, old);
    assert.equal(await withFileLock(silent, async () => 'broken', { pollMs: 5, staleMs: 10_000 }), 'broken');

    const live = join(dir, 'live.lock');
    await writeFile(live, `${process.pid}\n${hostname()}\n`);
    const aborted = AbortSignal.timeout(100);
    await assert.rejects(withFileLock(live, async () => 'never', { pollMs: 5, signal: aborted }));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
