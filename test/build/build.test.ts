/**
 * The production build (`npm run build`, infra/scripts/build.sh): compiled into a fresh folder, then
 * the API and a worker started from it with plain node (no tsx) run one job against a real Redis and
 * registry, submitted with the built client (package.json `exports["./client"]`). The job's image has
 * a zstd layer, so every run-time file the build must carry beside the JavaScript is used: the Lua
 * scripts, the layer-unpack worker thread (its .js), sbx_zstd.node, sbx_native.node and sbx-init.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { startStack, type Stack } from '../harness/stack.ts';
import { WORKER_NODE_FLAGS } from '../../worker/src/node-flags.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  scripts: Record<string, string>;
  exports?: Record<string, string | Record<string, string>>;
  bin?: Record<string, string>;
};

let scratch: string;
let out: string;
let built: { stdout: string; stderr: string };
let stack: Stack | undefined;

/** A package.json path of the build ("./dist/x.js") inside this test's output folder. */
const inBuild = (target: string): string => {
  assert.match(target, /^\.\/dist\//, `${target} should point into dist/`);
  return join(out, target.slice('./dist/'.length));
};

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(out, join(e.parentPath, e.name)));
}

before(async () => {
  // Node finds the dependencies by walking up from the built files: the checkout's node_modules beside the build.
  scratch = await mkdtemp(join(tmpdir(), 'sbx-build-test-'));
  symlinkSync(join(ROOT, 'node_modules'), join(scratch, 'node_modules'));
  out = join(scratch, 'dist');
  built = await promisify(execFile)('npm', ['run', '--silent', 'build', '--', out], { cwd: ROOT, maxBuffer: 16 << 20 }).catch((e: { stdout: string; stderr: string; message: string }) => {
    throw new Error(`npm run build failed: ${e.message}\n${e.stdout}\n${e.stderr}`);
  });
});
after(async () => {
  await stack?.stop();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

test('npm run build emits JavaScript with .js imports, the files it loads, and nothing of tests or benches', () => {
  const files = filesUnder(out);
  for (const entry of ['api/src/main.js', 'worker/src/main.js', 'worker/src/images/layers/layer-unpack-worker.js', 'native/index.js', 'client/src/index.js', 'client/src/index.d.ts']) {
    assert.ok(files.includes(entry), `${entry} missing from the build (${built.stderr.trim()})`);
  }
  for (const runtime of ['core/src/lua/createJob-2.lua', 'core/src/lua/transitionJob-2.lua', 'native/build/Release/sbx_native.node', 'native/build/Release/sbx_zstd.node', 'native/build/Release/sbx-init']) {
    assert.ok(files.includes(runtime), `${runtime} is loaded at run time but missing from the build`);
  }
  const strays = files.filter((f) => /\.test\.|(^|\/)(bench|test|fixtures)\//.test(f) || (f.endsWith('.ts') && !f.endsWith('.d.ts')));
  assert.deepEqual(strays, [], 'tests, benches, fixtures and TypeScript sources stay out of the build');
  const tsImports = files
    .filter((f) => f.endsWith('.js'))
    .filter((f) => /(?:from\s*|import\s*\(\s*)["']\.{1,2}\/[^"']*\.ts["']/.test(readFileSync(join(out, f), 'utf8')));
  assert.deepEqual(tsImports, [], 'relative imports are rewritten to .js');
});

test('package.json: build script, exports of the client (with types) and bin point into the build', () => {
  assert.match(pkg.scripts.build ?? '', /build/);
  const client = pkg.exports?.['./client'];
  assert.ok(client && typeof client === 'object', 'exports["./client"] with conditions');
  assert.ok(existsSync(inBuild(client.types!)), `types ${client.types}`);
  assert.ok(existsSync(inBuild(client.default ?? client.import!)), `code ${client.default ?? client.import}`);
  for (const [name, target] of Object.entries(pkg.bin ?? {})) {
    const file = target.replace(/^\.\//, '');
    assert.ok(existsSync(file.startsWith('dist/') ? inBuild(`./${file}`) : join(ROOT, file)), `bin ${name} → ${target}`);
  }
});

test('the compiled CLI runs with node alone; installed, package.json\'s bin runs its one-file bundle', async () => {
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: scratch };
  const main = join(out, 'cli/src/main.js');
  assert.ok(existsSync(main), 'cli/src/main.js in the build');
  const { stdout } = await promisify(execFile)(process.execPath, [main, '--help'], { cwd: scratch, env });
  assert.match(stdout, /\brun\b/, 'the help lists the commands');
  // As npm installs the package (package.json "files"): the bin and dist/, no cli/src beside the bin.
  const bin = join(scratch, pkg.bin!.sbx!);
  mkdirSync(join(bin, '..'), { recursive: true });
  writeFileSync(bin, readFileSync(join(ROOT, pkg.bin!.sbx!)));
  const bundle = join(out, 'cli/bin/sbx.mjs');
  const imports = [...readFileSync(bundle, 'utf8').matchAll(/^import .* from ["']([^"']+)["']/gm)].map((m) => m[1]!);
  assert.deepEqual(imports.filter((m) => !m.startsWith('node:')), [], 'the bundle imports nothing but Node\'s own modules');
  const installed = await promisify(execFile)(process.execPath, [bin, '--version'], { cwd: scratch, env });
  assert.equal(installed.stdout, `sbx version ${JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version}\n`);
  const help = await promisify(execFile)(process.execPath, [bin, 'run', '--help'], { cwd: scratch, env });
  assert.match(help.stdout, /Usage: +sbx run/);
});

test('a TypeScript project importing sbx/client type-checks against the built declarations', async () => {
  // The package as installed: its package.json beside the build, linked into a consumer's node_modules.
  writeFileSync(join(scratch, 'package.json'), readFileSync(join(ROOT, 'package.json')));
  const consumer = join(scratch, 'consumer');
  mkdirSync(join(consumer, 'node_modules'), { recursive: true });
  symlinkSync(scratch, join(consumer, 'node_modules', 'sbx'));
  writeFileSync(join(consumer, 'package.json'), '{ "type": "module" }\n');
  writeFileSync(join(consumer, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', strict: true, noEmit: true, skipLibCheck: true, types: ['node'] },
    files: ['use.ts'],
  }));
  writeFileSync(join(consumer, 'use.ts'), [
    "import { SbxClient, type Job } from 'sbx/client';",
    "const job: Job = await new SbxClient({ baseUrl: 'http://127.0.0.1:8080' }).get('j_1');",
    'export const status: string = job.status;',
    '// @ts-expect-error: a status is a string (fails if the declarations degrade to any)',
    'export const wrong: number = job.status;',
    '',
  ].join('\n'));
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  await promisify(execFile)(process.execPath, [tsc, '-p', consumer], { cwd: consumer }).catch((e: { stdout: string; message: string }) => {
    assert.fail(`the consumer does not type-check against the build: ${e.stdout || e.message}`);
  });
});

test('the API and a worker started from the build with node alone run a job to the end', async () => {
  stack = await startStack({ dist: out });
  for (const p of [stack.api, ...stack.workers]) {
    const argv = readFileSync(`/proc/${p.child.pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    assert.equal(argv[0], process.execPath, `${p.name} runs node itself`);
    const script = argv.slice(1).find((a) => !a.startsWith('-'));
    assert.ok(script?.startsWith(out) && script.endsWith('/src/main.js'), `${p.name} runs ${argv.join(' ')}`);
    assert.ok(!argv.some((a) => a.includes('tsx')), `${p.name} without tsx: ${argv.join(' ')}`);
    if (p !== stack.api) for (const flag of WORKER_NODE_FLAGS) assert.ok(argv.includes(flag), `${p.name} runs with ${flag}: ${argv.join(' ')}`);
  }
  assert.doesNotMatch(stack.workers[0]!.log(), /started without the worker's V8 flags/);
  const client = pkg.exports!['./client'] as Record<string, string>;
  const { SbxClient } = (await import(pathToFileURL(inBuild(client.default ?? client.import!)).href)) as typeof import('../../client/src/index.ts');
  const job = await new SbxClient(stack.apiUrl).run({ image: `${stack.registry.host}/test/busybox-zstd:latest`, command: ['sh', '-c', 'echo built; echo err >&2'] });
  const logs = () => [stack!.api, ...stack!.workers].map((p) => `--- ${p.name}\n${p.log()}`).join('\n');
  assert.equal(job.status, 'succeeded', `${JSON.stringify(job)}\n${logs()}`);
  assert.deepEqual(job.output, { stdout: 'built\n', stderr: 'err\n' });
});
