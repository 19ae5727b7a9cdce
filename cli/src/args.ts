/**
 * A small flag parser with Docker's habits: `--name value`, `--name=value`, `-e K=V`, `-eK=V`,
 * grouped short booleans (`-aq`), repeatable flags, `--` to end flags, and (for `run`) flags stop
 * at the first positional so that `sbx run IMAGE sh -c ...` hands `-c` to the command.
 * node:util parseArgs cannot stop at the first positional, hence this.
 */
import { UsageError } from './cli-error.ts';

export interface FlagSpec {
  /** Long name without dashes. */
  name: string;
  short?: string;
  /** `boolean` takes no value; `string` takes one; `list` takes one and may repeat. */
  type: 'boolean' | 'string' | 'list';
  /** For --help: what the value is (e.g. `bytes`) and what it does. */
  value?: string;
  help: string;
}

export interface Parsed {
  flags: Map<string, string | boolean | string[]>;
  positionals: string[];
}

export function parseFlags(command: string, argv: readonly string[], specs: readonly FlagSpec[], opts: { stopAtPositional?: boolean } = {}): Parsed {
  const byLong = new Map(specs.map((s) => [s.name, s]));
  const byShort = new Map(specs.filter((s) => s.short).map((s) => [s.short!, s]));
  const flags = new Map<string, string | boolean | string[]>();
  const positionals: string[] = [];
  const set = (spec: FlagSpec, value: string | boolean) => {
    if (spec.type === 'list') flags.set(spec.name, [...((flags.get(spec.name) as string[] | undefined) ?? []), value as string]);
    else flags.set(spec.name, value);
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg.startsWith('--') && arg.length > 2) {
      const eq = arg.indexOf('=');
      const name = arg.slice(2, eq < 0 ? undefined : eq);
      const spec = byLong.get(name);
      if (!spec) throw new UsageError(`unknown flag: --${name}`, command);
      if (spec.type === 'boolean') {
        if (eq >= 0 && !/^(true|false)$/.test(arg.slice(eq + 1))) throw new UsageError(`invalid argument "${arg.slice(eq + 1)}" for "--${name}" flag: expected true or false`, command);
        set(spec, eq < 0 || arg.slice(eq + 1) === 'true');
        continue;
      }
      const value = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
      if (value === undefined) throw new UsageError(`flag needs an argument: --${name}`, command);
      set(spec, value);
      continue;
    }
    if (arg.startsWith('-') && arg.length > 1) {
      for (let j = 1; j < arg.length; j++) {
        const spec = byShort.get(arg[j]!);
        if (!spec) throw new UsageError(`unknown shorthand flag: '${arg[j]}' in ${arg}`, command);
        if (spec.type === 'boolean') {
          set(spec, true);
          continue;
        }
        const rest = arg.slice(j + 1).replace(/^=/, '');
        const value = rest !== '' ? rest : argv[++i];
        if (value === undefined) throw new UsageError(`flag needs an argument: '${arg[j]}' in -${arg[j]}`, command);
        set(spec, value);
        break;
      }
      continue;
    }
    if (opts.stopAtPositional) {
      positionals.push(...argv.slice(i));
      break;
    }
    positionals.push(arg);
  }
  return { flags, positionals };
}

export const flagString = (p: Parsed, name: string): string | undefined => p.flags.get(name) as string | undefined;
export const flagBool = (p: Parsed, name: string): boolean => p.flags.get(name) === true;
export const flagList = (p: Parsed, name: string): string[] => (p.flags.get(name) as string[] | undefined) ?? [];

/** `parse(s)` of a flag's value, or a usage error of `command` naming the flag and the value. */
export function parseFlag<T>(command: string, flag: string, s: string, parse: (s: string) => T): T {
  try {
    return parse(s);
  } catch (e) {
    throw new UsageError(`invalid argument "${s}" for "--${flag}" flag: ${(e as Error).message}`, command);
  }
}

/** A string flag's value parsed (undefined when absent); see parseFlag. */
export function flagValue<T>(p: Parsed, command: string, flag: string, parse: (s: string) => T): T | undefined {
  const s = flagString(p, flag);
  return s === undefined ? undefined : parseFlag(command, flag, s, parse);
}
