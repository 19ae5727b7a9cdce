// One line on stdout and the whole k6 summary as JSON (SUMMARY, default loadtest/results/<scenario>.json).

/** The thresholds that failed, as "metric expression". */
function failedThresholds(metrics) {
  return Object.entries(metrics).flatMap(([name, m]) => Object.entries(m.thresholds || {}).filter(([, t]) => !t.ok).map(([expr]) => `${name} ${expr}`));
}

const ms = (v) => (v === undefined ? '-' : v.toFixed(1));

export function summarize(scenario, trends) {
  return function handleSummary(data) {
    const m = data.metrics;
    const count = (name) => (m[name] ? m[name].values.count || 0 : 0);
    const failed = failedThresholds(m);
    const parts = trends.filter((t) => m[t]).map((t) => `${t.replace(/^sbx_/, '')} p50 ${ms(m[t].values.med)} p99 ${ms(m[t].values['p(99)'])} ms (n=${m[t].values.count ?? '?'})`);
    const checks = m.checks ? m.checks.values : { passes: 0, fails: 0 };
    const line = `sbx loadtest ${scenario}: ${count('iterations')} iterations, ${m.iterations ? m.iterations.values.rate.toFixed(1) : 0}/s, ` +
      `http failed ${m.http_req_failed ? m.http_req_failed.values.passes : 0}/${count('http_reqs')}, checks failed ${checks.fails}/${checks.passes + checks.fails}, ` +
      `dropped ${count('dropped_iterations')}; ${parts.join('; ')}; thresholds ${failed.length ? `FAILED: ${failed.join('; ')}` : 'passed'}\n`;
    return { stdout: line, [__ENV.SUMMARY || `loadtest/results/${scenario}.json`]: JSON.stringify(data, null, 2) };
  };
}
