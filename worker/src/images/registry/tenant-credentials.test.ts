/**
 * A tenant's registry credentials file is read again when it is rewritten, also when the new file
 * has the same size and keeps the old one's mtime (`cp -p`, `rsync -t`, `touch -r` of a file renamed
 * over it): keyed on mtime and size alone, the worker kept using the old credentials until restarted.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { TenantCredentials } from './tenant-credentials.ts';

const dir = mkdtempSync(join(tmpdir(), 'sbx-tenant-creds-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const config = (password: string) => JSON.stringify({ auths: { 'registry.example:5000': { auth: Buffer.from(`team:${password}`).toString('base64') } } });

test('credentials rotated by a file of the same size renamed over the old one, its mtime kept, are the ones used', async () => {
  const file = join(dir, 'team-a.json');
  writeFileSync(file, config('old-password-1'));
  const kept = Math.floor(Date.now() / 1000) - 60; // whole seconds: utimes keeps them exactly
  utimesSync(file, kept, kept);
  const creds = new TenantCredentials(dir);
  assert.equal((await creds.lookup('team-a', 'registry.example:5000', 'img'))?.password, 'old-password-1');

  const before = statSync(file);
  const next = join(dir, 'team-a.json.new');
  writeFileSync(next, config('new-password-2'));
  utimesSync(next, kept, kept); // as `cp -p` or `rsync -t` leave it
  renameSync(next, file);
  const after = statSync(file);
  assert.equal(after.size, before.size, 'the same size');
  assert.equal(after.mtimeMs, before.mtimeMs, 'the same mtime');
  assert.equal((await creds.lookup('team-a', 'registry.example:5000', 'img'))?.password, 'new-password-2');
});

test('an unchanged file is not read again; a removed one gives no credentials', async () => {
  const file = join(dir, 'team-b.json');
  writeFileSync(file, config('password-b'));
  const creds = new TenantCredentials(dir);
  assert.equal((await creds.lookup('team-b', 'registry.example:5000', 'img'))?.password, 'password-b');
  let reads = 0;
  const read = (creds as unknown as { read: (...a: unknown[]) => Promise<unknown> }).read.bind(creds);
  (creds as unknown as { read: (...a: unknown[]) => Promise<unknown> }).read = (...a: unknown[]) => (reads++, read(...a));
  assert.equal((await creds.lookup('team-b', 'registry.example:5000', 'img'))?.password, 'password-b');
  assert.equal(reads, 0, 'served from what was read');
  rmSync(file);
  assert.equal(await creds.lookup('team-b', 'registry.example:5000', 'img'), undefined);
});
