/**
 * The flags every worker benchmark takes: `--runs N` (default 5), `--dir DIR` (work files; default
 * $SBX_BENCH_DIR or /var/tmp), `--json`; `value()` and `has()` read a benchmark's own flags.
 */
export interface BenchArgs {
  runs: number;
  dir: string;
  json: boolean;
  value(flag: string): string | undefined;
  has(flag: string): boolean;
}

export function benchArgs(argv: string[]): BenchArgs {
  const value = (flag: string) => {
    const i = argv.indexOf(flag);
    return i === -1 ? undefined : argv[i + 1];
  };
  const has = (flag: string) => argv.includes(flag);
  return { runs: Number(value('--runs') ?? 5), dir: value('--dir') ?? process.env.SBX_BENCH_DIR ?? '/var/tmp', json: has('--json'), value, has };
}
