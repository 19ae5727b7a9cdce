/**
 * The deployment files are checked, and each check is shown to fail on a copy broken on purpose:
 * - infra/k8s/*.yaml pass `kubeconform -strict` against the Kubernetes JSON schemas, built offline
 *   from the Go module proxy by infra/scripts/install-kubeconform.sh (kubeconform and the OpenAPI
 *   document of k8s.io/kubernetes, both pinned; see infra/README.md);
 * - infra/systemd/*.service pass `systemd-analyze verify` without a single warning;
 * - infra/compose.yaml parses as YAML and its worker declares exactly the privileges of the table in
 *   infra/README.md ("The worker's privileges"), its API none; the Dockerfiles' users and the k8s
 *   pods' privileges are what the README says.
 * Missing tools come from Debian's and Go's registries (systemd, python3-yaml, Go modules): nothing is skipped.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WORKER_NODE_FLAGS } from '../../worker/src/node-flags.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');
let scratch: string;

before(() => {
  scratch = mkdtempSync(join(tmpdir(), 'sbx-deploy-files-'));
});
after(() => rmSync(scratch, { recursive: true, force: true }));

function run(command: string, args: string[], input?: string): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(command, args, { cwd: ROOT, input, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Installs a Debian package when `probe` fails, the way infra/scripts/install-deps.sh does. */
function ensureDebianPackage(pkg: string, probe: () => boolean): void {
  if (probe()) return;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update', '-qq'], ['install', '-y', '-qq', '--no-install-recommends', pkg]]) {
    const r = spawnSync('apt-get', args, { env, encoding: 'utf8' });
    assert.equal(r.status, 0, `apt-get ${args.join(' ')}: ${r.stderr}`);
  }
  assert.ok(probe(), `${pkg} installed but still not usable`);
}

/** Writes `text` with `from` replaced by `to` into the scratch dir; the replacement must happen. */
function brokenCopy(name: string, text: string, from: string | RegExp, to: string): string {
  const broken = text.replace(from, to);
  assert.notEqual(broken, text, `${name}: ${String(from)} not found, the copy would not be broken`);
  const path = join(scratch, name);
  writeFileSync(path, broken);
  return path;
}

// ---------------------------------------------------------------- YAML (PyYAML, Debian's python3-yaml)

function parseYaml(text: string): unknown[] {
  ensureDebianPackage('python3-yaml', () => run('python3', ['-c', 'import yaml']).code === 0);
  const r = run('python3', ['-c', 'import sys, json, yaml; json.dump(list(yaml.safe_load_all(sys.stdin)), sys.stdout)'], text);
  if (r.code !== 0) throw new Error(`not YAML: ${r.stderr.trim().split('\n').slice(-3).join(' ')}`);
  return JSON.parse(r.stdout) as unknown[];
}

type Obj = Record<string, unknown>;
const obj = (value: unknown, what: string): Obj => {
  assert.ok(typeof value === 'object' && value !== null && !Array.isArray(value), `${what} should be a mapping`);
  return value as Obj;
};

// ---------------------------------------------------------------- kubeconform

describe('k8s manifests: kubeconform -strict', () => {
  let tool: { bin: string; version: string; schemaLocation: string };

  before(() => {
    const r = run('bash', ['infra/scripts/install-kubeconform.sh']);
    assert.equal(r.code, 0, `install-kubeconform.sh failed:\n${r.stderr}`);
    const out = Object.fromEntries(r.stdout.trim().split('\n').map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));
    tool = { bin: out.bin!, version: out['kubernetes-version']!, schemaLocation: out['schema-location']! };
  });

  type Report = {
    resources: { filename: string; kind: string; name: string; status: string; msg: string; validationErrors?: { path: string; msg: string }[] }[];
    summary: { valid: number; invalid: number; errors: number; skipped: number };
  };
  function kubeconform(files: string[]): { code: number | null; report: Report } {
    const r = run(tool.bin, ['-strict', '-summary', '-verbose', '-output', 'json', '-kubernetes-version', tool.version, '-schema-location', tool.schemaLocation, ...files]);
    assert.equal(r.stderr, '', 'kubeconform wrote to stderr');
    return { code: r.code, report: JSON.parse(r.stdout) as Report };
  }

  test('infra/k8s/*.yaml are valid: every resource checked against its schema, none skipped', (t) => {
    const { code, report } = kubeconform(['infra/k8s/api.yaml', 'infra/k8s/worker.yaml', 'infra/k8s/network-policy.yaml']);
    t.diagnostic(`Kubernetes ${tool.version}: ${report.resources.map((r) => `${r.kind} ${r.name}: ${r.status}`).join(', ')}`);
    assert.deepEqual(report.summary, { valid: 5, invalid: 0, errors: 0, skipped: 0 }, JSON.stringify(report.resources, null, 1));
    assert.deepEqual(report.resources.map((r) => `${r.kind}/${r.name}`).sort(), ['DaemonSet/sbx-worker', 'Deployment/sbx-api', 'NetworkPolicy/sbx-api', 'NetworkPolicy/sbx-worker', 'Service/sbx-api']);
    assert.equal(code, 0);
  });

  test('fails a copy with a wrong field type (replicas: "two")', () => {
    const { code, report } = kubeconform([brokenCopy('api.yaml', read('infra/k8s/api.yaml'), 'replicas: 2', 'replicas: "two"')]);
    assert.equal(code, 1);
    const deployment = report.resources.find((r) => r.kind === 'Deployment')!;
    assert.equal(deployment.status, 'statusInvalid');
    assert.deepEqual(deployment.validationErrors, [{ path: '/spec/replicas', msg: 'got string, want null or integer' }]);
  });

  test('fails a copy with an unknown field (strict) and one without a required field', () => {
    const worker = brokenCopy('worker.yaml', read('infra/k8s/worker.yaml'), 'securityContext: { privileged: true }', 'securityContext: { privilged: true }');
    const api = brokenCopy('api-noname.yaml', read('infra/k8s/api.yaml'), /- name: api\n\s+image: /, '- image: ');
    const { code, report } = kubeconform([worker, api]);
    assert.equal(code, 1);
    const msgs = report.resources.filter((r) => r.status === 'statusInvalid').map((r) => `${r.kind}: ${r.validationErrors?.map((e) => `${e.path} ${e.msg}`).join('; ')}`);
    assert.deepEqual(msgs.sort(), [
      "DaemonSet: /spec/template/spec/containers/0/securityContext additional properties 'privilged' not allowed",
      "Deployment: /spec/template/spec/containers/0 missing property 'name'",
    ]);
  });

  test('fails a copy whose kind has no schema (apps/v1beta1 Deployment, removed in 1.16): nothing is skipped silently', () => {
    const { code, report } = kubeconform([brokenCopy('api-v1beta1.yaml', read('infra/k8s/api.yaml'), 'apiVersion: apps/v1', 'apiVersion: apps/v1beta1')]);
    assert.equal(code, 1);
    const deployment = report.resources.find((r) => r.kind === 'Deployment')!;
    assert.equal(deployment.status, 'statusError');
    assert.match(deployment.msg, /could not find schema for Deployment/);
  });
});

// ---------------------------------------------------------------- systemd-analyze verify

describe('systemd units: systemd-analyze verify', () => {
  before(() => ensureDebianPackage('systemd', () => run('sh', ['-c', 'command -v systemd-analyze']).code === 0));

  const UNITS = ['sbx-api.service', 'sbx-worker.service'];
  /** The units as committed, or with ExecStart's node replaced by this one where /usr/bin/node is absent. */
  function unitFiles(dir: string): string[] {
    if (existsSync('/usr/bin/node')) return UNITS.map((u) => join(ROOT, 'infra/systemd', u));
    return UNITS.map((u) => brokenCopy(join(dir, u), read(`infra/systemd/${u}`), /^ExecStart=\/usr\/bin\/node /m, `ExecStart=${process.execPath} `));
  }
  function verify(files: string[]): { code: number | null; output: string } {
    const r = run('systemd-analyze', ['verify', ...files]);
    return { code: r.code, output: (r.stdout + r.stderr).trim() };
  }

  test('both units verify without a warning', (t) => {
    if (!existsSync('/usr/bin/node')) t.diagnostic(`no /usr/bin/node here: ExecStart points at ${process.execPath} in the verified copies`);
    const { code, output } = verify(unitFiles(''));
    assert.equal(output, '', 'systemd-analyze verify printed warnings');
    assert.equal(code, 0);
  });

  test('a copy with a misspelt key and a bad value prints warnings (exit 0: the output is the verdict)', () => {
    const text = readFileSync(unitFiles('')[1]!, 'utf8');
    const broken = brokenCopy('sbx-worker.service', text.replace(/^NoNewPrivileges=yes$/m, 'NoNewPrivilege=yes'), /^RestartSec=2s$/m, 'RestartSec=2parsecs');
    const { output } = verify([broken]);
    assert.match(output, /Unknown key '?NoNewPrivilege'? in section \[Service\]/);
    assert.match(output, /Failed to parse sec value.*2parsecs/);
  });

  test('a copy whose ExecStart does not exist fails', () => {
    const broken = brokenCopy('sbx-api.service', read('infra/systemd/sbx-api.service'), /^ExecStart=\S+/m, 'ExecStart=/usr/bin/sbx-no-such-node');
    const { code, output } = verify([broken]);
    assert.notEqual(code, 0);
    assert.match(output, /Command \/usr\/bin\/sbx-no-such-node is not executable/);
  });
});

// ---------------------------------------------------------------- privileges: compose, Dockerfiles, k8s

/** `key: value` pairs of the first column of infra/README.md's worker-privileges table. */
function readmePrivileges(readme: string): Map<string, Set<string>> {
  const table = /<!-- worker-privileges -->\n([\s\S]*?)<!-- \/worker-privileges -->/.exec(readme);
  assert.ok(table, 'infra/README.md has no <!-- worker-privileges --> table');
  const privileges = new Map<string, Set<string>>();
  for (const row of table[1]!.split('\n').filter((line) => line.startsWith('| `'))) {
    const cell = /^\| `([a-z_]+): ([^`]+)` \|/.exec(row);
    assert.ok(cell, `README row without a \`key: value\` first column: ${row}`);
    privileges.set(cell[1]!, (privileges.get(cell[1]!) ?? new Set()).add(cell[2]!));
  }
  return privileges;
}

/** Keys of a compose service that grant or withhold nothing; every other key must be in the README. */
const NEUTRAL_KEYS = new Set(['build', 'image', 'command', 'environment', 'env_file', 'depends_on', 'restart', 'healthcheck', 'labels', 'logging', 'stop_grace_period', 'deploy', 'ports']);

/** Differences between a compose service and the README's table (empty = they say the same). */
function privilegeDrift(service: Obj, described: Map<string, Set<string>>): string[] {
  const declared = new Map<string, Set<string>>();
  for (const [key, value] of Object.entries(service)) {
    if (NEUTRAL_KEYS.has(key)) continue;
    declared.set(key, new Set((Array.isArray(value) ? value : [value]).map((v) => (typeof v === 'string' ? v : JSON.stringify(v)))));
  }
  const drift: string[] = [];
  for (const key of new Set([...declared.keys(), ...described.keys()])) {
    for (const v of declared.get(key) ?? []) if (!described.get(key)?.has(v)) drift.push(`compose has ${key}: ${v}, the README does not`);
    for (const v of described.get(key) ?? []) if (!declared.get(key)?.has(v)) drift.push(`the README has ${key}: ${v}, compose does not`);
  }
  return drift;
}

/**
 * What the API service declares beyond dropping everything (empty = no privilege). Its one volume
 * kind: a directory of this repo's, read-only (the receipts' public keys).
 */
function apiPrivileges(api: Obj): string[] {
  const problems: string[] = [];
  for (const key of ['privileged', 'cap_add', 'user', 'cgroup', 'pid', 'ipc', 'network_mode', 'devices']) if (key in api) problems.push(`api has ${key}`);
  for (const v of (api.volumes as unknown[] | undefined) ?? []) if (typeof v !== 'string' || !/^\.\/[\w.-]+:\/etc\/sbx\/[\w./-]+:ro$/.test(v)) problems.push(`api has volume ${JSON.stringify(v)}: only ./dir:/etc/sbx/...:ro`);
  if (JSON.stringify(api.cap_drop) !== '["ALL"]') problems.push('api does not drop every capability');
  if (JSON.stringify(api.security_opt) !== '["no-new-privileges=true"]') problems.push(`api security_opt ${JSON.stringify(api.security_opt)}`);
  if (api.read_only !== true) problems.push('api root is writable');
  return problems;
}

/** The USER of a Dockerfile's last stage (undefined = root). */
function finalUser(dockerfile: string): string | undefined {
  const lastStage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
  return [...lastStage.matchAll(/^USER\s+(\S+)/gm)].at(-1)?.[1];
}

describe('privileges: compose, Dockerfiles and k8s say what infra/README.md says', () => {
  const composeServices = (text: string): Obj => obj(obj(parseYaml(text)[0], 'compose.yaml').services, 'services');

  test("compose.yaml parses; its worker declares exactly the README's table, its API no privilege", () => {
    const services = composeServices(read('infra/compose.yaml'));
    const described = readmePrivileges(read('infra/README.md'));
    assert.ok((described.get('cap_add')?.size ?? 0) >= 1, 'the README lists capabilities');
    assert.deepEqual(privilegeDrift(obj(services.worker, 'worker'), described), []);
    assert.deepEqual(apiPrivileges(obj(services.api, 'api')), []);
  });

  test('the check fails on copies with privileged: true, an extra capability, a missing volume, a privileged API, bad YAML', () => {
    const described = readmePrivileges(read('infra/README.md'));
    const compose = read('infra/compose.yaml');
    const worker = (text: string): Obj => obj(composeServices(text).worker, 'worker');
    assert.deepEqual(privilegeDrift(worker(compose.replace('    cgroup: host\n', '    cgroup: host\n    privileged: true\n')), described), ['compose has privileged: true, the README does not']);
    assert.deepEqual(privilegeDrift(worker(compose.replace('SYS_ADMIN, NET_ADMIN]', 'SYS_ADMIN, NET_ADMIN, SYS_PTRACE]')), described), ['compose has cap_add: SYS_PTRACE, the README does not']);
    assert.deepEqual(privilegeDrift(worker(compose.replace(/^ {6}- \/sys\/fs\/cgroup:.*\n/m, '')), described), ['the README has volumes: /sys/fs/cgroup:/sys/fs/cgroup:rw, compose does not']);
    const api = obj(composeServices(compose.replace('    cap_drop: [ALL]\n    security_opt: ["no-new-privileges=true"]', '    cap_add: [NET_ADMIN]\n    security_opt: ["no-new-privileges=true"]')).api, 'api');
    assert.deepEqual(apiPrivileges(api), ['api has cap_add', 'api does not drop every capability']);
    const writable = obj(composeServices(compose.replace('./receipt-public:/etc/sbx/receipt-public:ro', '/var/run/docker.sock:/var/run/docker.sock')).api, 'api');
    assert.deepEqual(apiPrivileges(writable), ['api has volume "/var/run/docker.sock:/var/run/docker.sock": only ./dir:/etc/sbx/...:ro']);
    assert.throws(() => parseYaml(compose.replace('  worker:\n', '  worker:\n   oops: [\n')), /not YAML/);
  });

  test('the API image runs as `node`, the worker image as root (checked on a copy too)', () => {
    assert.equal(finalUser(read('infra/docker/api.Dockerfile')), 'node');
    assert.equal(finalUser(read('infra/docker/worker.Dockerfile')), undefined);
    assert.equal(finalUser(`${read('infra/docker/worker.Dockerfile')}USER node\n`), 'node');
  });

  test('k8s: the worker pod is privileged with exactly the state dir and cgroup hostPaths; the API pod has no privilege', () => {
    const podOf = (file: string, kind: string): Obj => {
      const doc = parseYaml(read(file)).map((d) => obj(d, file)).find((d) => d.kind === kind)!;
      return obj(obj(obj(doc.spec, 'spec').template, 'template').spec, 'pod spec');
    };
    const workerPod = podOf('infra/k8s/worker.yaml', 'DaemonSet');
    const workerContainers = workerPod.containers as Obj[];
    assert.deepEqual(workerContainers.map((c) => c.securityContext), [{ privileged: true }]);
    const hostPaths = (pod: Obj) => (pod.volumes as Obj[] | undefined ?? []).filter((v) => 'hostPath' in v).map((v) => obj(v.hostPath, 'hostPath').path);
    assert.deepEqual(hostPaths(workerPod), ['/var/lib/sbx', '/sys/fs/cgroup']);
    // Every other volume of either pod is a Secret or ConfigMap (the receipt keys), mounted read-only.
    const apiPod = podOf('infra/k8s/api.yaml', 'Deployment');
    for (const pod of [workerPod, apiPod]) {
      for (const v of (pod.volumes as Obj[] | undefined) ?? []) if (!('hostPath' in v)) assert.ok('secret' in v || 'configMap' in v, `volume ${JSON.stringify(v)}`);
      for (const m of (pod.containers as Obj[]).flatMap((c) => (c.volumeMounts as Obj[] | undefined) ?? [])) {
        const v = (pod.volumes as Obj[]).find((x) => x.name === m.name)!;
        if (!('hostPath' in v)) assert.equal(m.readOnly, true, `mount ${JSON.stringify(m)} is writable`);
      }
    }
    for (const key of ['hostNetwork', 'hostPID', 'hostIPC']) assert.ok(!(key in workerPod), `worker pod has ${key}`);
    assert.deepEqual(hostPaths(apiPod), []);
    assert.ok(!('hostNetwork' in apiPod));
    assert.deepEqual((apiPod.containers as Obj[]).map((c) => c.securityContext), [
      { runAsNonRoot: true, runAsUser: 1000, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' } },
    ]);
  });

  test('k8s: a NetworkPolicy admits to the worker pods only the metrics port, from Prometheus, and to the API pods only the API port', () => {
    const policies = parseYaml(read('infra/k8s/network-policy.yaml')).map((d) => obj(d, 'network-policy.yaml')).filter((d) => d.kind === 'NetworkPolicy');
    const specFor = (app: string): Obj => {
      const p = policies.find((d) => JSON.stringify(obj(obj(d.spec, 'spec').podSelector, 'podSelector')) === JSON.stringify({ matchLabels: { app } }));
      assert.ok(p, `no NetworkPolicy selects the pods app: ${app}`);
      return obj(p.spec, 'spec');
    };
    const worker = specFor('sbx-worker');
    assert.deepEqual(worker.policyTypes, ['Ingress']);
    const metricsPort = Number(/SBX_WORKER_METRICS_PORT, value: "(\d+)"/.exec(read('infra/k8s/worker.yaml'))?.[1]); // the DaemonSet's env
    assert.deepEqual(worker.ingress, [{ from: [{ namespaceSelector: {}, podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } } }], ports: [{ protocol: 'TCP', port: metricsPort }] }]);
    const api = specFor('sbx-api');
    assert.deepEqual(api.policyTypes, ['Ingress']);
    assert.deepEqual(api.ingress, [{ ports: [{ protocol: 'TCP', port: 8080 }] }]);
  });
});

// ---------------------------------------------------------------- the worker's node command line

/** Where each way of starting the worker gives node's arguments, as committed or in `text`. */
const WORKER_STARTS: { file: string; argv: (text: string) => string[] }[] = [
  { file: 'package.json', argv: (t) => (JSON.parse(t) as { scripts: Record<string, string> }).scripts.worker!.split(/\s+/) },
  { file: 'infra/docker/worker.Dockerfile', argv: (t) => JSON.parse(/^CMD (\[.*\])$/m.exec(t)?.[1] ?? '[]') as string[] },
  {
    file: 'infra/k8s/worker.yaml',
    argv: (t) => {
      const docs = parseYaml(t) as { kind?: string; spec?: { template?: { spec?: { containers?: { name: string; command?: string[] }[] } } } }[];
      return docs.find((d) => d.kind === 'DaemonSet')?.spec?.template?.spec?.containers?.find((c) => c.name === 'worker')?.command ?? [];
    },
  },
  { file: 'infra/systemd/sbx-worker.service', argv: (t) => (/^ExecStart=(.*)$/m.exec(t)?.[1] ?? '').split(/\s+/) },
  { file: 'infra/scripts/up.sh', argv: (t) => (/^start worker (.*)$/m.exec(t)?.[1] ?? '').split(/\s+/) },
];

/** The flags of WORKER_NODE_FLAGS that node is not given before the worker's script in `argv`. */
function missingBeforeScript(argv: string[]): string[] {
  const script = argv.findIndex((a) => /worker\/src\/main\.(js|ts)$/.test(a));
  assert.ok(script > 0, `no worker script in ${argv.join(' ')}`);
  const nodeArgs = argv.slice(argv.findIndex((a) => /(^|\/)node$/.test(a)) + 1, script);
  return WORKER_NODE_FLAGS.filter((f) => !nodeArgs.includes(f));
}

describe("the worker's V8 flags (worker/src/node-flags.ts) in every way of starting it", () => {
  for (const { file, argv } of WORKER_STARTS) {
    test(`${file} starts node with them`, () => {
      assert.deepEqual(missingBeforeScript(argv(read(file))), []);
    });
  }

  test("compose runs the worker image's CMD (it sets no command of its own)", () => {
    const [compose] = parseYaml(read('infra/compose.yaml')) as { services: Record<string, { command?: unknown; build?: { dockerfile?: string } }> }[];
    assert.equal(compose!.services.worker!.build?.dockerfile, 'infra/docker/worker.Dockerfile');
    assert.equal(compose!.services.worker!.command, undefined);
  });

  test('a start without them, or with them after the script, is caught', () => {
    const flag = WORKER_NODE_FLAGS[0]!;
    assert.deepEqual(missingBeforeScript(['node', 'dist/worker/src/main.js']), [flag]);
    assert.deepEqual(missingBeforeScript(['node', 'dist/worker/src/main.js', flag]), [flag]);
    const unit = readFileSync(brokenCopy('sbx-worker.service', read('infra/systemd/sbx-worker.service'), ` ${flag}`, ''), 'utf8');
    assert.deepEqual(missingBeforeScript(WORKER_STARTS.find((s) => s.file.endsWith('.service'))!.argv(unit)), [flag]);
  });
});
