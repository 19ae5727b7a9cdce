/**
 * Commands that take several jobs (inspect, kill, wait, verify) go through them one by one: an error
 * for one is reported on its own stderr line and the next goes on; the exit code is 1 if any failed
 * (Docker does so).
 */
import { UsageError } from './cli-error.ts';
import { write, type Context } from './command.ts';

/** The JOB arguments of `sbx <name>`: at least one, or a usage error. */
export function jobIds(name: string, positionals: string[]): string[] {
  if (positionals.length === 0) throw new UsageError(`"sbx ${name}" requires at least 1 argument.\nUsage: sbx ${name} JOB [JOB...]`, name);
  return positionals;
}

export async function eachJob(ctx: Context, list: string[], fn: (id: string) => Promise<void>): Promise<number> {
  let failed = 0;
  for (const id of list) {
    try {
      await fn(id);
    } catch (e) {
      failed++;
      await write(ctx.stderr, `sbx: ${id}: ${(e as Error).message}\n`);
    }
  }
  return failed ? 1 : 0;
}
