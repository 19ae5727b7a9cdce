/**
 * The cgroup v2 VM's test files (and the fixtures they start) as plain JavaScript, one file each,
 * bundled by esbuild on the host before the VM boots.
 *
 * Why: the VM runs under software emulation (TCG) where a process that loads tsx spends ~5 s in
 * tsx's own code and its loader thread before it reads a test, and `node --test` starts one such
 * process per file after loading tsx itself: ~13 s of each file's time was that (listen.test.ts: 23 s
 * for a 2.5 s test). A bundle runs under plain `node`.
 *
 *   npx tsx infra/scripts/vm/bundle-tests.ts OUTDIR FILE.ts...
 *
 * Writes OUTDIR/<FILE's path in the checkout, .ts → .mjs> for each FILE. Each module keeps the
 * `import.meta.url`, `.dirname` and `.filename` of its source (written in as strings), so the paths a
 * test builds from them (fixtures, probes, the native addon) are those of the checkout. npm packages
 * are bundled in as well; the native addon is loaded by path at run time as from the sources.
 * A test that starts a TypeScript fixture asks `nodeArgsFor` (test/harness/node-args.ts), which finds
 * the fixture's bundle here through SBX_TEST_BUNDLES=OUTDIR.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { build, type Plugin } from 'esbuild';
import { bundlePath } from '../../../test/harness/node-args.ts';


/** Writes each module's own import.meta values into it: a bundle has one import.meta, the bundle's. */
const sourceImportMeta: Plugin = {
  name: 'source-import-meta',
  setup(b) {
    b.onLoad({ filter: /\.[cm]?[jt]s$/ }, async (args) => {
      const text = await readFile(args.path, 'utf8');
      if (!text.includes('import.meta')) return undefined;
      const contents = text
        .replaceAll('import.meta.dirname', JSON.stringify(path.dirname(args.path)))
        .replaceAll('import.meta.filename', JSON.stringify(args.path))
        .replaceAll('import.meta.url', JSON.stringify(pathToFileURL(args.path).href));
      if (contents.includes('import.meta')) throw new Error(`${args.path}: uses import.meta other than .url, .dirname, .filename; cannot bundle it`);
      return { contents, loader: args.path.endsWith('ts') ? 'ts' : 'js' };
    });
  },
};

/** Bundles each of `sources` into `outdir`. */
export async function bundleTests(outdir: string, sources: string[]): Promise<void> {
  await Promise.all(sources.map((source) => build({
    entryPoints: [path.resolve(source)],
    outfile: bundlePath(outdir, source),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    // CommonJS packages' require() of Node's own modules needs a real require.
    banner: { js: "import { createRequire as sbxCreateRequire } from 'node:module';\nconst require = sbxCreateRequire(import.meta.url);" },
    external: ['*.node'],
    plugins: [sourceImportMeta],
    legalComments: 'none',
    logLevel: 'warning',
  })));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [outdir, ...sources] = process.argv.slice(2);
  if (!outdir || sources.length === 0) {
    process.stderr.write('usage: tsx infra/scripts/vm/bundle-tests.ts OUTDIR FILE.ts...\n');
    process.exit(2);
  }
  await bundleTests(outdir, sources);
}
