#!/usr/bin/env node
// The `sbx` command: the compiled CLI when `npm run build` made one (dist/), else the TypeScript
// source through tsx (a dependency already), loaded in this same process so signals reach it.
import { existsSync } from 'node:fs';

const built = new URL('../../dist/cli/src/main.js', import.meta.url);
process.env.SBX_CLI_ENTRY = '1';
if (existsSync(built)) {
  await import(built.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('../src/main.ts', import.meta.url).href);
}
