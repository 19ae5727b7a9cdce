// The native parsers under AddressSanitizer + UndefinedBehaviorSanitizer: `native/tools/sanitize.sh
// --quick` (its control overflow must be reported; the job payload harness, whose code runs in
// sbx-init inside the job; the init config harness, launcher to sbx-init; the sbx_zstd decoders fed
// mutated layer bytes). The whole run, launcher
// tests included, is `bash native/tools/sanitize.sh` (minutes: not in the suite). As root: the
// harness chroots into a scratch directory.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const script = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'tools', 'sanitize.sh');

describe('sanitizers', { skip: process.getuid?.() === 0 ? false : 'needs root (the harness chroots)' }, () => {
  it('the job payload harness and the decoders\' fuzz run clean under ASan + UBSan', { timeout: 300_000 }, () => {
    const r = spawnSync('bash', [script, '--quick'], { encoding: 'utf8', maxBuffer: 64 << 20 });
    const output = `${r.stdout}${r.stderr}`;
    assert.doesNotMatch(output, /ERROR: AddressSanitizer|runtime error:/, output.slice(-8000));
    assert.equal(r.status, 0, output.slice(-8000));
    assert.match(output, /job_payload_fuzz: 1500 cases \(\d+ refused, \d+ written, [1-9]\d* written and collected\), 0 failed/);
    assert.match(output, /init_config_fuzz: 3000 cases \(\d+ built and parsed back, [1-9]\d* mutated ones still accepted\), 0 failed/);
    assert.match(output, /decoders_fuzz: 2000 streams \([1-9]\d* decoded, [1-9]\d* refused\)/);
    assert.match(output, /sanitize: clean in \d+ s/);
  });
});
