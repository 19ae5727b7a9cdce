#!/usr/bin/env node
// The `sbx` command. In a checkout (cli/src present) it runs the TypeScript source through tsx, so
// what you edit is what runs; an installed package (dist/ only, see package.json "files") or
// SBX_CLI_FROM=dist runs the compiled CLI from `npm run build`. Loaded in this same process, so
// signals (Ctrl-C) reach the CLI itself.
import { existsSync } from 'node:fs';

const source = new URL('../src/main.ts', import.meta.url);
const built = new URL('../../dist/cli/src/main.js', import.meta.url);
if (process.env.SBX_CLI_FROM === 'dist' || !existsSync(source)) {
  if (!existsSync(built)) {
    process.stderr.write('sbx: the compiled CLI is missing (dist/cli/src/main.js): run npm run build\n');
    process.exit(125);
  }
  await (await import(built.href)).runProcess();
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await (await import(source.href)).runProcess();
}
