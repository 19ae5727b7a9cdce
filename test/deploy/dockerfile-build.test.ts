/**
 * The build stage of each Dockerfile (infra/docker/*.Dockerfile), reproduced without Docker: its
 * instructions are read in order, each COPY copies exactly its sources (relative to the repository
 * root, the build context of `docker build -f infra/docker/X.Dockerfile .`) into a scratch folder
 * standing for the stage's WORKDIR, and its RUN steps are done there:
 * - the apt-get of the compilers is this host's business (infra/scripts/install-deps.sh);
 * - `npm ci` is this checkout's result of it: node_modules linked, and the native build (what npm ci's
 *   install script, node-gyp, makes) copied, once every file binding.gyp names has been COPYed;
 * - `npm run build` runs for real (infra/scripts/build.sh: tsc -p tsconfig.build.json), offline.
 * It must succeed and leave the script the final stage's CMD runs in the folder that stage copies.
 * A copy of a Dockerfile broken on purpose (native/index.ts without the modules it imports) fails.
 * Also: infra/compose.yaml's header says as many API replicas as the file deploys.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');
let scratch: string;

before(() => {
  scratch = mkdtempSync(join(tmpdir(), 'sbx-dockerfile-build-'));
});
after(() => rmSync(scratch, { recursive: true, force: true }));

// ---------------------------------------------------------------- reading a Dockerfile

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

/** The instructions of a Dockerfile: comments and blank lines dropped, `\` continuations joined. */
function instructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending: { text: string; line: number } | null = null;
  text.split('\n').forEach((raw, i) => {
    if (pending === null && /^\s*(#|$)/.test(raw)) return;
    if (pending !== null && /^\s*#/.test(raw)) return; // a comment inside a continuation
    const line = raw.replace(/\s+$/, '');
    const part = line.endsWith('\\') ? line.slice(0, -1) : line;
    pending = pending ? { text: `${pending.text} ${part.trim()}`, line: pending.line } : { text: part.trim(), line: i + 1 };
    if (!line.endsWith('\\')) {
      const m = /^(\S+)\s*(.*)$/.exec(pending.text)!;
      out.push({ keyword: m[1]!.toUpperCase(), args: m[2]!.trim(), line: pending.line });
      pending = null;
    }
  });
  return out;
}

/** The instructions of stage `name` (`FROM ... AS name`), its FROM first. */
function stage(text: string, name: string): Instruction[] {
  const all = instructions(text);
  const start = all.findIndex((i) => i.keyword === 'FROM' && new RegExp(`\\sAS\\s+${name}$`, 'i').test(i.args));
  assert.ok(start >= 0, `no stage "${name}"`);
  const end = all.findIndex((i, n) => n > start && i.keyword === 'FROM');
  return all.slice(start, end < 0 ? undefined : end);
}

/** A COPY's flags, sources and destination (shell or JSON form). */
function copyArgs(args: string): { flags: string[]; sources: string[]; dest: string } {
  const words = args.startsWith('[') ? (JSON.parse(args) as string[]) : args.split(/\s+/);
  const flags = words.filter((w) => w.startsWith('--'));
  const rest = words.filter((w) => !w.startsWith('--'));
  assert.ok(rest.length >= 2, `COPY ${args}: a source and a destination`);
  return { flags, sources: rest.slice(0, -1), dest: rest.at(-1)! };
}

/** The paths (relative to the context) a COPY source names: itself, or its wildcard's matches, sorted. */
function expandSource(context: string, source: string): string[] {
  const segments = posix.normalize(source).replace(/^\.\//, '').split('/').filter((s) => s !== '' && s !== '.');
  assert.ok(!segments.includes('..'), `COPY source ${source} leaves the build context`);
  let found = [''];
  for (const segment of segments) {
    if (!/[*?[]/.test(segment)) {
      found = found.map((p) => posix.join(p, segment)).filter((p) => existsSync(join(context, p)));
      continue;
    }
    const re = new RegExp(`^${segment.replace(/[.+^${}()|\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')}$`);
    found = found.flatMap((p) => {
      const dir = join(context, p);
      return existsSync(dir) && statSync(dir).isDirectory() ? readdirSync(dir).filter((n) => re.test(n)).map((n) => posix.join(p, n)) : [];
    });
  }
  return found.filter((p) => p !== '').sort();
}

// ---------------------------------------------------------------- doing the build stage

const NATIVES = ['sbx_native.node', 'sbx_zstd.node', 'sbx-init'];

/** Every file binding.gyp names (sources, action inputs; not the `<!(...)` expansions), relative to native/. */
function bindingGypFiles(gypText: string): string[] {
  const files = new Set<string>();
  const walk = (value: unknown, key: string): void => {
    if (Array.isArray(value)) {
      for (const v of value) {
        if (typeof v === 'string' && ['sources', 'init_sources', 'inputs'].includes(key) && !v.startsWith('<')) files.add(v);
        else walk(v, key);
      }
    } else if (typeof value === 'object' && value !== null) {
      for (const [k, v] of Object.entries(value)) walk(v, k);
    }
  };
  walk(JSON.parse(gypText), '');
  return [...files].sort();
}

interface StageResult {
  ok: boolean;
  log: string;
  workdir: string;
}

/**
 * Does the stage `name` of `dockerfile` (its text) in a folder of its own under the scratch dir; the
 * COPY sources are read from `context` (the repository root).
 */
function runStage(label: string, dockerfile: string, name: string, context = ROOT): StageResult {
  const workdir = mkdtempSync(join(scratch, `${label}-`));
  let imageWorkdir: string | undefined;
  const log: string[] = [];
  const inWorkdir = (dest: string): string => {
    assert.ok(imageWorkdir, 'a COPY before any WORKDIR');
    const abs = posix.resolve(imageWorkdir, dest);
    assert.ok(abs === imageWorkdir || abs.startsWith(`${imageWorkdir}/`), `COPY to ${dest}: outside WORKDIR ${imageWorkdir}, not reproduced here`);
    return join(workdir, posix.relative(imageWorkdir, abs)) + (dest.endsWith('/') ? '/' : '');
  };
  for (const step of stage(dockerfile, name)) {
    const where = `line ${step.line}: ${step.keyword} ${step.args}`;
    switch (step.keyword) {
      case 'FROM':
      case 'ARG':
      case 'LABEL':
        break;
      case 'ENV':
        // npm_config_nodedir: where the image's node keeps its headers, for node-gyp (not run here: see npm ci).
        break;
      case 'WORKDIR':
        assert.ok(step.args.startsWith('/'), `${where}: an absolute WORKDIR`);
        assert.equal(imageWorkdir, undefined, `${where}: one WORKDIR per stage is all this test reproduces`);
        imageWorkdir = step.args;
        break;
      case 'COPY': {
        const { flags, sources, dest } = copyArgs(step.args);
        assert.deepEqual(flags, [], `${where}: COPY flags are not reproduced here`);
        const paths = sources.flatMap((s) => {
          const found = expandSource(context, s);
          if (found.length === 0) throw new Error(`${where}: ${s} names no file of the build context`);
          return found;
        });
        const target = inWorkdir(dest);
        const intoDir = target.endsWith('/') || paths.length > 1 || sources.some((s) => /[*?[]/.test(s));
        assert.ok(!intoDir || target.endsWith('/'), `${where}: several sources need a destination ending in /`);
        for (const p of paths) {
          const from = join(context, p);
          const to = statSync(from).isDirectory() ? target : intoDir ? join(target, basename(p)) : target;
          mkdirSync(statSync(from).isDirectory() ? to : dirname(to), { recursive: true });
          cpSync(from, to, { recursive: true });
        }
        log.push(`${where}: ${paths.join(' ')}`);
        break;
      }
      case 'RUN': {
        const cmd = step.args;
        if (/^apt-get update && apt-get install /.test(cmd)) {
          log.push(`${where}: this host's packages`);
        } else if (cmd === 'npm ci') {
          // What npm ci reads, and what its install script (node-gyp, native/binding.gyp) compiles.
          for (const f of ['package.json', 'package-lock.json']) assert.ok(existsSync(join(workdir, f)), `${where}: ${f} not copied before npm ci`);
          const gyp = join(workdir, 'native/binding.gyp');
          assert.ok(existsSync(gyp), `${where}: native/binding.gyp not copied before npm ci (its install script builds it)`);
          const missing = bindingGypFiles(readFileSync(gyp, 'utf8')).filter((f) => !existsSync(join(workdir, 'native', f)));
          assert.deepEqual(missing, [], `${where}: files native/binding.gyp builds from, not copied before npm ci`);
          symlinkSync(join(ROOT, 'node_modules'), join(workdir, 'node_modules'));
          const release = join(ROOT, 'native/build/Release');
          if (NATIVES.every((f) => existsSync(join(release, f)))) {
            mkdirSync(join(workdir, 'native/build/Release'), { recursive: true });
            for (const f of NATIVES) cpSync(join(release, f), join(workdir, 'native/build/Release', f));
          } // else build.sh builds them itself, as it does after a fresh npm ci
          log.push(`${where}: this checkout's node_modules and native build`);
        } else if (cmd === 'npm run build') {
          const r = spawnSync('npm', ['run', 'build'], {
            cwd: workdir,
            encoding: 'utf8',
            maxBuffer: 64 << 20,
            env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', npm_config_offline: 'true', npm_config_update_notifier: 'false' },
          });
          if (r.error) throw r.error;
          log.push(`${where}: exit ${r.status}\n${r.stdout}${r.stderr}`);
          if (r.status !== 0) return { ok: false, log: log.join('\n'), workdir };
        } else {
          throw new Error(`${where}: a RUN step this test does not know how to reproduce; teach it`);
        }
        break;
      }
      default:
        throw new Error(`${where}: an instruction this test does not reproduce; teach it`);
    }
  }
  return { ok: true, log: log.join('\n'), workdir };
}

const stagesDone = new Map<string, StageResult>();

/**
 * runStage, once per distinct stage: the API's and the worker's Dockerfiles share their build stage
 * word for word, and the same steps from the same context build the same folder (each build is a
 * whole tsc run, ~20 s).
 */
function runStageOnce(label: string, dockerfile: string, name: string): StageResult {
  const key = JSON.stringify(stage(dockerfile, name).map((i) => [i.keyword, i.args]));
  let r = stagesDone.get(key);
  if (!r) stagesDone.set(key, (r = runStage(label, dockerfile, name)));
  return r;
}

/** Where the final stage takes the build from (`COPY --from=build SRC DEST`) and the script its CMD runs. */
function finalStage(dockerfile: string): { from: string; dest: string; script: string } {
  const all = instructions(dockerfile);
  const last = all.slice(all.map((i) => i.keyword).lastIndexOf('FROM'));
  const copy = last.find((i) => i.keyword === 'COPY' && /--from=build\b/.test(i.args));
  assert.ok(copy, 'the final stage copies nothing from the build stage');
  const { sources, dest } = copyArgs(copy.args);
  const cmd = last.find((i) => i.keyword === 'CMD');
  assert.ok(cmd, 'the final stage has no CMD');
  const script = (JSON.parse(cmd.args) as string[]).find((a) => a.endsWith('.js'));
  assert.ok(script, `CMD ${cmd.args} runs no script`);
  return { from: sources[0]!, dest, script };
}

// ---------------------------------------------------------------- the tests

describe("each Dockerfile's build stage, reproduced without Docker", () => {
  for (const file of ['infra/docker/api.Dockerfile', 'infra/docker/worker.Dockerfile']) {
    test(`${file}: the build stage succeeds and holds what the image runs`, (t) => {
      const text = read(file);
      const r = runStageOnce(basename(file, '.Dockerfile'), text, 'build');
      t.diagnostic(r.log.split('\n').filter((l) => /^line \d+: (COPY|RUN)/.test(l)).length + ' COPY/RUN steps reproduced');
      assert.ok(r.ok, `the build stage of ${file} fails:\n${r.log}`);
      const buildWorkdir = stage(text, 'build').find((i) => i.keyword === 'WORKDIR')!.args;
      const { from, dest, script } = finalStage(text);
      assert.ok(from.startsWith(`${buildWorkdir}/`), `COPY --from=build ${from}: outside the build stage's WORKDIR ${buildWorkdir}`);
      const built = join(r.workdir, posix.relative(buildWorkdir, from));
      const finalWorkdir = instructions(text).filter((i) => i.keyword === 'WORKDIR').at(-1)!.args;
      const inImage = posix.relative(finalWorkdir, posix.resolve(finalWorkdir, dest));
      assert.ok(script.startsWith(`${inImage}/`), `CMD's ${script} is not under ${dest}`);
      const scriptInBuild = join(built, posix.relative(inImage, script));
      assert.ok(existsSync(scriptInBuild), `${script} (what CMD runs) is not in the build stage's ${from}`);
      for (const f of NATIVES) assert.ok(existsSync(join(built, 'native/build/Release', f)), `${f} missing from the build`);
    });
  }

  test('the check fails on a copy that COPYs native/index.ts without the modules it imports', () => {
    const text = read('infra/docker/api.Dockerfile');
    const broken = text.replace(/^COPY native\/\S*\.ts\b.*$/gm, '').replace(/^COPY core core$/m, 'COPY native/index.ts native/index.ts\nCOPY core core');
    assert.notEqual(broken, text, 'the api.Dockerfile has no `COPY core core` line to break beside');
    const r = runStage('api-broken', broken, 'build');
    assert.equal(r.ok, false, 'the broken copy built');
    assert.match(r.log, /Cannot find module '\.\/tty-io\.(js|ts)'/);
  });

  test('the check fails on a copy whose COPY names a file that is not there, or leaves out a native source', () => {
    const text = read('infra/docker/worker.Dockerfile');
    assert.throws(() => runStage('worker-nofile', text.replace('COPY core core', 'COPY core/nope core/nope'), 'build'), /core\/nope names no file/);
    const noTools = text.replace(/^COPY native\/tools\/build-init\.sh .*\n/m, '');
    assert.notEqual(noTools, text);
    assert.throws(() => runStage('worker-notools', noTools, 'build'), /not copied before npm ci/);
  });

  test('reading a Dockerfile: continuations, comments, stages', () => {
    const text = 'FROM a AS build\nWORKDIR /src\n# c\nRUN x \\\n  # inner\n  && y\n\nFROM b\nCOPY --from=build /src/dist dist\nCMD ["node", "dist/m.js"]\n';
    assert.deepEqual(stage(text, 'build').map((i) => `${i.line} ${i.keyword} ${i.args}`), ['1 FROM a AS build', '2 WORKDIR /src', '4 RUN x && y']);
    assert.deepEqual(finalStage(text), { from: '/src/dist', dest: 'dist', script: 'dist/m.js' });
    assert.deepEqual(expandSource(ROOT, 'native/*.ts').filter((p) => p === 'native/index.ts'), ['native/index.ts']);
  });
});

// ---------------------------------------------------------------- infra/compose.yaml's header

const NUMBER_WORDS: Record<string, number> = { one: 1, two: 2, three: 3, four: 4 };

/** The number of API replicas infra/compose.yaml's header comment speaks of, and the number the file deploys. */
function composeApiReplicas(compose: string): { said: number | undefined; deployed: number } {
  const header = compose.split('\n').filter((l) => l.startsWith('#')).join(' ');
  const m = /\b(\w+) API replicas?\b/.exec(header);
  const said = m ? (NUMBER_WORDS[m[1]!.toLowerCase()] ?? Number(m[1])) : undefined;
  const api = /^ {2}api:\n((?: {4}.*\n|\s*\n)*)/m.exec(compose);
  assert.ok(api, 'compose.yaml has no api service');
  const replicas = /^ {4}deploy:.*\breplicas:\s*(\d+)/m.exec(api[1]!);
  return { said, deployed: replicas ? Number(replicas[1]) : 1 };
}

test("infra/compose.yaml's header says as many API replicas as the file deploys (checked on a copy too)", () => {
  const compose = read('infra/compose.yaml');
  const { said, deployed } = composeApiReplicas(compose);
  assert.ok(said !== undefined, 'the header says how many API replicas');
  assert.equal(said, deployed, `the header says ${said} API replicas, the api service deploys ${deployed}`);
  const other = deployed === 1 ? 2 : 1;
  const broken = compose.replace(/(^ {4}deploy:.*\breplicas:\s*)\d+/m, `$1${other}`);
  assert.notEqual(broken, compose);
  assert.deepEqual(composeApiReplicas(broken), { said, deployed: other });
});
