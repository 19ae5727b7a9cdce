/**
 * The `sbx` command as one JavaScript file: cli/src/main.ts with every module it imports (the client,
 * undici, ws, the few core files) bundled by esbuild, the package's version written in.
 *
 * Why: Node 20 resolves, reads and links each ES module on its own, and undici alone is ~60 files.
 * Started from the ~80 compiled files `sbx --help` took 0.35 s; from this one file 0.19 s (node
 * itself starts in 0.07); through tsx from the sources 0.9 s. A command-line tool is started for
 * every command a user types.
 *
 *   npx tsx cli/build/bundle.ts OUTFILE    (infra/scripts/build.sh writes <out>/cli/bin/sbx.mjs)
 *
 * The file runs as `node OUTFILE …`, or imported, then `runProcess()` (cli/bin/sbx.js does that).
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const ROOT = new URL('../../', import.meta.url);

/** Bundles the CLI into `outfile` (an ES module, Node 20). */
export async function bundleCli(outfile: string): Promise<void> {
  const { version } = JSON.parse(readFileSync(new URL('package.json', ROOT), 'utf8')) as { version: string };
  await build({
    entryPoints: [new URL('cli/src/main.ts', ROOT).pathname],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    // undici and ws are CommonJS: their require() of Node's own modules needs a real require.
    banner: { js: "import { createRequire as sbxCreateRequire } from 'node:module';\nconst require = sbxCreateRequire(import.meta.url);" },
    define: { SBX_BUNDLED_VERSION: JSON.stringify(version) },
    legalComments: 'none',
    logLevel: 'warning',
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const outfile = process.argv[2];
  if (!outfile) {
    process.stderr.write('usage: tsx cli/build/bundle.ts OUTFILE\n');
    process.exit(2);
  }
  await bundleCli(outfile);
}
