/**
 * How a test starts a TypeScript script (a fixture, a bench) in a new Node process: through tsx from
 * the sources, or, where SBX_TEST_BUNDLES names a directory of bundles made by
 * infra/scripts/vm/bundle-tests.ts (the cgroup v2 VM does this: tsx costs ~5 s per process under its
 * software emulation), the script's bundle under plain node.
 */
import fs from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** Where the bundle of `source` (a .ts file in the checkout) is under `outdir`. */
export function bundlePath(outdir: string, source: string): string {
  const relative = path.relative(ROOT, path.resolve(source));
  if (relative.startsWith('..') || !relative.endsWith('.ts')) throw new Error(`not a .ts file in the checkout: ${source}`);
  return path.join(outdir, relative.replace(/\.ts$/, '.mjs'));
}

/** The arguments of `node` (before the script's own) that run `script`. */
export function nodeArgsFor(script: string): string[] {
  const bundles = process.env.SBX_TEST_BUNDLES;
  if (!bundles) return ['--import', 'tsx', script];
  const bundle = bundlePath(bundles, script);
  // Never a silent fallback to the sources: a missing bundle is a fault of the VM's list.
  if (!fs.existsSync(bundle)) throw new Error(`SBX_TEST_BUNDLES is set but ${script} was not bundled (${bundle}); add it to the VM's list in infra/scripts/test.sh`);
  return [bundle];
}
