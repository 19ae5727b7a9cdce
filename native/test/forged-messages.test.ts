// What a job's pid 1 sends the launcher is read as coming from the job (sbx-init runs inside it, as
// the job's user once its privileges are dropped): a report whose error strings (stage, syscall,
// path: fixed arrays of proto::Msg) fill their arrays without a NUL must not make the launcher read
// past them. A stand-in pid 1 (probes/forged-init.cc, loaded with the addon's init() before the
// real sbx-init) sends exactly that. Before the fix the launcher took each string up to the next 0
// byte: through the other fields, the rest of the message and then its own stack (ASan:
// stack-buffer-overflow in strlen, from job.cc errorPayload).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { launch, LaunchError, type LaunchOptions } from '../index.ts';
import { baseSpec, makeTempDir, uniqueParent, useBusyboxFixture } from './helpers.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const parent = uniqueParent('forged');
const opts: LaunchOptions = { cgroupParent: parent, pool: false };

// Loaded before anything of index.ts runs: the addon keeps the first init() it gets.
const forgedDir = makeTempDir('forged-init');
const forgedInit = path.join(forgedDir, 'forged-init');
after(() => fs.rmSync(forgedDir, { recursive: true, force: true }));
execFileSync('g++', ['-std=c++17', '-static', '-O2', '-D_GNU_SOURCE', '-I', path.join(here, '..', 'src'), '-o', forgedInit, path.join(here, 'probes', 'forged-init.cc')]);
createRequire(import.meta.url)(path.join(here, '..', 'build', 'Release', 'sbx_native.node')).init(forgedInit);

describe('a pid 1 that forges its report', () => {
  const fixture = useBusyboxFixture('forged', parent, opts);

  it('unterminated error strings are cut at their arrays\' ends, not read past them', async () => {
    const e = await launch(baseSpec([fixture.rootfs]), opts).then(() => assert.fail('launch resolved'), (err: unknown) => err);
    assert.ok(e instanceof LaunchError, String(e));
    assert.equal(e.code, 'EPERM');
    assert.equal(e.stage, 'A'.repeat(31));
    assert.equal(e.syscall, 'A'.repeat(31));
    assert.equal(e.path, 'A'.repeat(255));
  });
});
