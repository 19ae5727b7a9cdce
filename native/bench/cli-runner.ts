// Runs a command N times with spawnSync and prints the wall times (ms) as JSON. Used by
// launcher-bench.ts to time CLI runtimes; crun runs it inside a private mount namespace.
import { spawnSync } from 'node:child_process';

const [runsArg, ...cmd] = process.argv.slice(2);
const runs = Number(runsArg);
const times: number[] = [];
let failures = 0;
let lastError = '';
for (let i = 0; i < runs; i++) {
  const t0 = performance.now();
  const r = spawnSync(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  times.push(performance.now() - t0);
  if (r.status !== 0) { failures++; lastError = String(r.stderr).slice(0, 300); }
}
process.stdout.write(JSON.stringify({ times, failures, lastError }) + '\n');
