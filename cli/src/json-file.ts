/** Reading the CLI's own JSON files (its config, Docker's config.json): missing = {}, broken = one clear CliError. */
import { readFileSync } from 'node:fs';
import { CliError } from './cli-error.ts';

/** The JSON object in `path`, {} when the file does not exist; `check` may throw to reject its content. */
export function readJsonObjectFile<T>(path: string, check: (v: Record<string, unknown>) => T, expected = ''): T | Record<string, never> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new CliError(`cannot read ${path}: ${(e as Error).message}`);
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
    return check(v as Record<string, unknown>);
  } catch (e) {
    throw new CliError(`${path} is not valid: ${(e as Error).message}${expected ? `; expected ${expected}` : ''}`);
  }
}
