/** What every `sbx <command>` is: its flags and usage (for --help and completion) and its run(). */
import type { SbxClient } from '../../client/src/index.ts';
import type { FlagSpec, Parsed } from './args.ts';
import { CliError } from './cli-error.ts';
import type { Settings } from './settings.ts';

export interface Io {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
}

export interface Context extends Io {
  settings: Settings;
  /** The API client, made on first use (so --help, login and completion need no API). */
  client(): SbxClient;
}

export interface Command {
  name: string;
  /** `sbx run [OPTIONS] IMAGE [COMMAND] [ARG...]` without the leading `sbx `. */
  usage: string;
  summary: string;
  flags: FlagSpec[];
  /** Flags end at the first positional (`run IMAGE CMD -flags-of-CMD`). */
  stopAtPositional?: boolean;
  /** Exit code when the command itself fails (125 for run, like Docker; 1 otherwise). */
  failureExit?: number;
  run(ctx: Context, args: Parsed): Promise<number>;
}

export const FORMAT_FLAG: FlagSpec = { name: 'format', type: 'string', value: 'string', help: 'Output format: table (default) or json' };

/**
 * Our stdout or stderr is gone (its reader exited: `sbx … | head`, or the terminal closed). The CLI
 * ends quietly with 141, a pipeline writer's exit on SIGPIPE; nothing is printed (there is nowhere to).
 */
export class OutputClosedError extends CliError {
  constructor() {
    super('the output was closed', 141);
    this.name = 'OutputClosedError';
  }
}

const watched = new WeakSet<NodeJS.WritableStream>();
const failed = new WeakSet<NodeJS.WritableStream>();

/**
 * Keeps a failed write on `stream` (EPIPE: its reader went away) from crashing the process with a
 * stack trace, and remembers the failure for write(): a pipe's `errored` does not stay set.
 */
export function watchOutput(stream: NodeJS.WritableStream): void {
  if (watched.has(stream)) return;
  watched.add(stream);
  stream.on('error', () => failed.add(stream));
}

function closed(stream: NodeJS.WritableStream): boolean {
  const s = stream as { errored?: unknown; destroyed?: boolean };
  return failed.has(stream) || !!s.errored || s.destroyed === true;
}

/**
 * Writes and waits for the stream to take it (a slow pipe must not make the CLI buffer without
 * bound). Throws OutputClosedError once the stream has failed or closed, instead of writing into it.
 */
export function write(stream: NodeJS.WritableStream, text: string | Uint8Array): Promise<void> | void {
  if (closed(stream)) throw new OutputClosedError();
  if (stream.write(text)) return;
  return new Promise((resolve, reject) => {
    const done = () => {
      for (const event of ['drain', 'close', 'error']) stream.off(event, done);
      if (closed(stream)) reject(new OutputClosedError());
      else resolve();
    };
    for (const event of ['drain', 'close', 'error']) stream.on(event, done);
  });
}
