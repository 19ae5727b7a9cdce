/**
 * The cgroup v2 VM runs its test files and their fixtures as bundles (infra/scripts/vm/bundle-tests.ts)
 * under plain node. A bundle must behave as its sources under tsx: each module sees its own
 * import.meta paths (fixtures, probes and the native addon are found by them), npm packages come
 * along, and a test that starts a fixture gets its bundle, never silently the sources.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { bundleTests } from '../../infra/scripts/vm/bundle-tests.ts';
import { bundlePath, nodeArgsFor } from '../harness/node-args.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sbx-test-bundles-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('a bundled fixture runs under plain node with its sources\' import.meta paths and the native addon', async () => {
  const fixture = path.join(ROOT, 'native/test/fixtures/protect-self.ts');
  await bundleTests(tmp, [fixture]);
  const bundle = bundlePath(tmp, fixture);
  assert.equal(bundle, path.join(tmp, 'native/test/fixtures/protect-self.mjs'));
  const text = fs.readFileSync(bundle, 'utf8');
  assert.ok(text.includes(JSON.stringify('file://' + path.join(ROOT, 'native/index.ts'))), 'native/index.ts keeps its own import.meta.url');
  // protectSelf() comes from the addon-backed module; its output is the four-element report.
  const out = JSON.parse(execFileSync(process.execPath, [bundle], { encoding: 'utf8' })) as unknown[];
  assert.equal(out.length, 4);
  assert.equal(out[2], true, 'protectSelf(200) succeeded');
  assert.equal(out[3], '200');
});

test('a test file\'s npm packages are bundled in: no bare import is left to resolve from the bundle\'s directory', async () => {
  const source = path.join(ROOT, 'native/test/cgroup-v2.test.ts');
  await bundleTests(tmp, [source]);
  const text = fs.readFileSync(bundlePath(tmp, source), 'utf8');
  assert.doesNotMatch(text, /from ["'](zod|undici|ioredis)["']/, 'no bare import of an npm package is left to resolve');
});

test('nodeArgsFor: tsx from the sources, the bundle under SBX_TEST_BUNDLES, and an error for one not bundled', () => {
  const fixture = path.join(ROOT, 'native/test/fixtures/rt-launcher.ts');
  const saved = process.env.SBX_TEST_BUNDLES;
  try {
    delete process.env.SBX_TEST_BUNDLES;
    assert.deepEqual(nodeArgsFor(fixture), ['--import', 'tsx', fixture]);
    process.env.SBX_TEST_BUNDLES = tmp;
    assert.throws(() => nodeArgsFor(fixture), /rt-launcher\.ts was not bundled/);
    assert.deepEqual(nodeArgsFor(path.join(ROOT, 'native/test/fixtures/protect-self.ts')), [path.join(tmp, 'native/test/fixtures/protect-self.mjs')]);
    assert.throws(() => bundlePath(tmp, '/etc/passwd'), /not a \.ts file in the checkout/);
  } finally {
    if (saved === undefined) delete process.env.SBX_TEST_BUNDLES;
    else process.env.SBX_TEST_BUNDLES = saved;
  }
});
