/** The launcher benches' `--name value` flags (launch-throughput.ts, throughput-bench.ts, kernel-floor.ts). */

/** The value after `name` ('' when it is the last argument), or `fallback` when `name` is absent. */
export function flagValue(args: readonly string[], name: string, fallback?: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? (args[i + 1] ?? '') : fallback;
}

/** `name`'s value as an integer from 1 up, or `fallback` when `name` is absent; anything else is refused. */
export function positiveFlag(args: readonly string[], name: string, fallback: number): number {
  const v = Number(flagValue(args, name, String(fallback)));
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer`);
  return v;
}
