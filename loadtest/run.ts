/**
 * `npm run loadtest -- <scenario> [--own-stack]`: one k6 scenario of loadtest/scenarios/, its
 * thresholds the verdict (exit 0 only when all pass). k6 comes from loadtest/install-k6.sh (built from
 * the Go module proxy, pinned).
 *   trivial  `true` at a constant arrival rate (?wait=true)
 *   mixed    short, 1 MiB output, 1-2 s sleeps and OOM-killed jobs at once
 *   sse      jobs read by several SSE clients each, every event checked
 *   soak     10 minutes of moderate load; loadtest/soak-monitor.ts samples the API's and worker's RSS
 *            and Redis every 10 s and judges them too (flat within 10 %, Redis bounded by retention)
 * Target: BASE_URL (default `npm run up`'s http://127.0.0.1:8080; the soak then reads the pids from
 * .sbx/run/ and Redis from SBX_LOADTEST_REDIS_URL or 127.0.0.1:$SBX_DEV_REDIS_PORT, and that stack
 * must have been started with a short SBX_JOB_TTL_SECONDS), or --own-stack: a private stack (test
 * harness: Redis, registry, API and one worker run from source, on free ports, removed at the end) with
 * the per-tenant submission rate limit off and, for the soak, SBX_JOB_TTL_SECONDS=60 (both overridable
 * from the environment). Every other setting goes to k6 from the environment (RATE, DURATION, …: see
 * the scenario's header). The k6 summary lands in loadtest/results/<scenario>.json (SUMMARY).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { judgeSoak, SoakMonitor } from './soak-monitor.ts';

export const SCENARIOS = ['trivial', 'mixed', 'sse', 'soak'] as const;
type Scenario = (typeof SCENARIOS)[number];
const ROOT = new URL('../', import.meta.url).pathname;

/** Builds k6 when missing (loadtest/install-k6.sh) and returns its path; throws with the script's words. */
export function installK6(env: Record<string, string> = {}): string {
  const r = spawnSync('bash', [join(ROOT, 'loadtest/install-k6.sh')], { encoding: 'utf8', env: { ...process.env, ...env } });
  if (r.status !== 0) throw new Error(`loadtest/install-k6.sh failed (exit ${r.status}):\n${r.stderr.trim()}`);
  return join(ROOT, '.tools/bin/k6');
}

/**
 * Runs k6 on a scenario with `env` added; resolves with its exit code (99: a threshold failed) and, with
 * `capture`, what it printed (else its output goes to ours).
 */
export function runK6(k6: string, scenario: Scenario, env: Record<string, string>, capture = false): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(k6, ['run', '--quiet', '--no-color', join('loadtest/scenarios', `${scenario}.js`)], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: capture ? ['ignore', 'pipe', 'pipe'] : 'inherit',
    });
    let output = '';
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), output }));
  });
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { 'own-stack': { type: 'boolean', default: false } } });
  const scenario = (positionals[0] ?? 'trivial') as Scenario;
  if (!SCENARIOS.includes(scenario)) {
    process.stderr.write(`loadtest: unknown scenario ${JSON.stringify(scenario)}; one of ${SCENARIOS.join(', ')}\n`);
    return 2;
  }
  const k6 = installK6();
  mkdirSync(join(ROOT, 'loadtest/results'), { recursive: true });
  const env: Record<string, string> = { SUMMARY: process.env.SUMMARY ?? join(ROOT, `loadtest/results/${scenario}.json`) };
  let stop = async () => {};
  let pids: Record<string, number> = {};
  let redisUrl = process.env.SBX_LOADTEST_REDIS_URL ?? `redis://127.0.0.1:${process.env.SBX_DEV_REDIS_PORT ?? '6399'}`;
  if (values['own-stack']) {
    const { startStack } = await import('../test/harness/stack.ts');
    const stack = await startStack({
      env: {
        SBX_TENANT_SUBMITS_PER_SECOND: process.env.SBX_TENANT_SUBMITS_PER_SECOND ?? '0',
        SBX_JOB_TTL_SECONDS: process.env.SBX_JOB_TTL_SECONDS ?? (scenario === 'soak' ? '60' : '86400'),
        // Webhooks are retried only while their job's record lives (the API refuses a longer window).
        SBX_WEBHOOK_RETRY_MS: process.env.SBX_WEBHOOK_RETRY_MS ?? (scenario === 'soak' ? '60000' : '3600000'),
        SBX_LOG_LEVEL: process.env.SBX_LOG_LEVEL ?? 'warn',
        ...(process.env.SBX_WORKER_SLOTS ? { SBX_WORKER_SLOTS: process.env.SBX_WORKER_SLOTS } : {}),
      },
    });
    stop = () => stack.stop();
    Object.assign(env, { BASE_URL: stack.apiUrl, SBX_IMAGE: stack.images.busybox });
    pids = { api: stack.api.child.pid!, worker: stack.workers[0]!.child.pid! };
    redisUrl = stack.env.SBX_REDIS_URL!;
  } else {
    const run = join(ROOT, '.sbx/run');
    for (const name of ['api', 'worker']) if (existsSync(join(run, `${name}.pid`))) pids[name] = Number(readFileSync(join(run, `${name}.pid`), 'utf8').trim());
  }
  try {
    if (scenario !== 'soak') return (await runK6(k6, scenario, env)).code;
    if (!pids.api || !pids.worker) throw new Error('soak: no API/worker pids (.sbx/run/*.pid): start the stack with npm run up, or use --own-stack');
    const monitor = new SoakMonitor(pids, redisUrl);
    monitor.start();
    const { code } = await runK6(k6, scenario, env);
    const samples = await monitor.stop();
    const verdict = judgeSoak(samples);
    const out = join(ROOT, 'loadtest/results/soak-monitor.json');
    writeFileSync(out, JSON.stringify({ pids, redisUrl, verdict, samples }, null, 1));
    process.stdout.write(`${verdict.lines.join('\n')}\nsbx soak monitor: ${samples.length} samples (${out}); ${verdict.ok ? 'passed' : 'FAILED'}\n`);
    return code !== 0 ? code : verdict.ok ? 0 : 1;
  } finally {
    await stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) process.exitCode = await main();
