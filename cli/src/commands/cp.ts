/**
 * `sbx cp JOB:PATH DEST`: one of the files a finished job's outputFiles collected, to a local file,
 * into a local directory (under its base name), or to stdout (`-`), like `docker cp` out of a
 * container. The destination is the user's: a name the job chose is never used as a path here
 * except as a base name, so a job's file names cannot write outside DEST.
 */
import { writeFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { CliError, UsageError } from '../cli-error.ts';
import { write, type Command } from '../command.ts';

export const cp: Command = {
  name: 'cp',
  usage: 'cp JOB:PATH DEST|-',
  summary: 'Copy a file a finished job left (its outputFiles) to a local path or stdout',
  flags: [],
  async run(ctx, args) {
    const [source, dest, ...rest] = args.positionals;
    const colon = source?.indexOf(':') ?? -1;
    if (!source || !dest || rest.length || colon <= 0 || colon === source.length - 1) {
      throw new UsageError('"sbx cp" requires exactly 2 arguments.\nUsage: sbx cp JOB:PATH DEST|-', 'cp');
    }
    const id = source.slice(0, colon);
    const path = source.slice(colon + 1);
    const files = await ctx.client().outputFiles(id);
    const file = files.find((f) => f.path === path && !f.skipped);
    if (!file) {
      const kept = files.filter((f) => !f.skipped).map((f) => f.path);
      throw new CliError(`no file ${JSON.stringify(path)} among what job ${id} left${kept.length ? ` (${kept.slice(0, 10).join(', ')}${kept.length > 10 ? ', …' : ''})` : ' (none: it asked for no outputFiles, matched nothing, has not ended, or was cancelled)'}`, 1);
    }
    if (file.truncated) await write(ctx.stderr, `sbx: warning: ${path} was cut to ${file.keptBytes} of its ${file.bytes} bytes (limits.outputBytes)\n`);
    if (dest === '-') {
      await write(ctx.stdout, file.data);
      return 0;
    }
    const target = isDirectory(dest) ? join(dest, basename(path)) : dest;
    try {
      writeFileSync(target, file.data);
    } catch (e) {
      throw new CliError(`cannot write ${target}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 1);
    }
    return 0;
  },
};

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
