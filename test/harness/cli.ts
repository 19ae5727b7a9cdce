/**
 * The `sbx` command as the tests run it: this checkout's sources bundled into one file by the same
 * code as `npm run build` (cli/build/bundle.ts), once per test process, in a temp dir removed when
 * the process exits. Spawn it as `node <file> ARGS`. It starts in ~0.13 s where the checkout's
 * cli/bin/sbx.js (tsx over the sources) takes ~0.9 s, and the CLI tests start it a hundred times;
 * cli.test.ts runs cli/bin/sbx.js itself too, and build.test.ts the installed package's bin.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundleCli } from '../../cli/build/bundle.ts';

let bundled: Promise<string> | undefined;

/** The path of the bundled CLI (built on the first call). */
export function sbxCli(): Promise<string> {
  bundled ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sbx-cli-bundle-'));
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'cli/bin/sbx.mjs');
    await bundleCli(file);
    return file;
  })();
  return bundled;
}
