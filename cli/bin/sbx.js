#!/usr/bin/env node
// The `sbx` command. In a checkout (cli/src present) it runs the TypeScript source through tsx, so
// what you edit is what runs; an installed package (dist/ only, see package.json "files") or
// SBX_CLI_FROM=dist runs the bundle `npm run build` writes (dist/cli/bin/sbx.mjs: the CLI and what
// it imports in one file, cli/build/bundle.ts). Loaded in this same process, so signals (Ctrl-C)
// reach the CLI itself.
import { existsSync } from 'node:fs';

const source = new URL('../src/main.ts', import.meta.url);
const built = new URL('../../dist/cli/bin/sbx.mjs', import.meta.url);
if (process.env.SBX_CLI_FROM === 'dist' || !existsSync(source)) {
  if (!existsSync(built)) {
    process.stderr.write('sbx: the built CLI is missing (dist/cli/bin/sbx.mjs): run npm run build\n');
    process.exit(125);
  }
  await (await import(built.href)).runProcess();
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await (await import(source.href)).runProcess();
}
