// The benches run as root and run what they built once into their tools directory (umoci, the
// issue-day launcher). A local user who makes that directory first, in a place every user may write,
// must not get a binary of theirs run as root (loadtest/lib/bench-tools-dir.ts). The planting user
// here is uid 65534 (setpriv), in a sticky world-writable directory made for the test, as /var/tmp is.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { benchToolsDir, ownDir, UnsafeBenchDirError } from '../../loadtest/lib/bench-tools-dir.ts';
import { ensureUmoci, UMOCI_VERSION } from '../../worker/bench/umoci-peer.ts';
import { ISSUE_DAY_COMMIT, issueDayLauncher } from '../../native/bench/issue-day-launcher.ts';

const asRoot = process.getuid?.() === 0;
const shared = mkdtempSync(join(tmpdir(), 'sbx-bench-dir-'));
chmodSync(shared, 0o1777);
after(() => rmSync(shared, { recursive: true, force: true }));

/** What uid 65534 runs: `sh -c script` in `shared`. */
function asNobody(script: string): void {
  execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'sh', '-c', script], { cwd: shared, stdio: 'pipe' });
}

/** `f` with SBX_BENCH_TOOLS=dir (unset: `dir` undefined), then the variable as it was. */
async function withToolsDir<T>(dir: string | undefined, f: () => T | Promise<T>): Promise<T> {
  const before = process.env.SBX_BENCH_TOOLS;
  if (dir === undefined) delete process.env.SBX_BENCH_TOOLS;
  else process.env.SBX_BENCH_TOOLS = dir;
  try {
    return await f();
  } finally {
    if (before === undefined) delete process.env.SBX_BENCH_TOOLS;
    else process.env.SBX_BENCH_TOOLS = before;
  }
}

describe('bench tools directory', { skip: !asRoot && 'needs root (setpriv to uid 65534)' }, () => {
  it('a umoci another user planted in the tools directory is not run', async () => {
    const dir = join(shared, 'planted-umoci');
    const marker = join(shared, 'umoci-ran-as');
    asNobody(`mkdir -m 0777 planted-umoci && printf '#!/bin/sh\\nid -u > ${marker}\\necho umoci version 0.6.0\\n' > planted-umoci/umoci-${UMOCI_VERSION} && chmod 0777 planted-umoci/umoci-${UMOCI_VERSION}`);
    await assert.rejects(withToolsDir(dir, () => ensureUmoci(() => {})), (e: Error) => e instanceof UnsafeBenchDirError && /belongs to uid 65534, not to this user/.test(e.message));
    assert.equal(existsSync(marker), false, `the planted umoci ran as uid ${existsSync(marker) ? execFileSync('cat', [marker], { encoding: 'utf8' }).trim() : '?'}`);
  });

  it('an issue-day launcher another user planted is not loaded', async () => {
    const release = `planted-launcher/launcher-${ISSUE_DAY_COMMIT.slice(0, 7)}/native/build/Release`;
    asNobody(`mkdir -p ${release} && touch ${release}/sbx_native.node ${release}/sbx-init && echo 'process.exit(42)' > planted-launcher/launcher-${ISSUE_DAY_COMMIT.slice(0, 7)}/native/index.ts`);
    await assert.rejects(withToolsDir(join(shared, 'planted-launcher'), () => issueDayLauncher(() => {})), UnsafeBenchDirError, 'the planted index.ts would be imported by the throughput bench');
  });

  it('a directory of this user that others may write, or a symlink to one, is refused; its own is used', async () => {
    const open = join(shared, 'open');
    mkdirSync(open, { mode: 0o777 });
    chmodSync(open, 0o777);
    assert.throws(() => ownDir(open), /writable by its group or others \(mode 777\)/);
    asNobody('ln -s /root link');
    assert.throws(() => ownDir(join(shared, 'link')), /is not a directory \(a symlink\?\)/);
    const mine = join(shared, 'mine');
    assert.equal(ownDir(mine), mine, 'made, and accepted');
    assert.equal(await withToolsDir(mine, benchToolsDir), mine);
  });

  it('the default is in this checkout, not a fixed path every user may write', async () => {
    assert.equal(await withToolsDir(undefined, benchToolsDir), resolve(import.meta.dirname, '../../.tools/bench'));
  });
});

