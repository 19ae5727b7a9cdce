/** What every `sbx <command>` is: its flags and usage (for --help and completion) and its run(). */
import type { SbxClient } from '../../client/src/index.ts';
import type { FlagSpec, Parsed } from './args.ts';
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

/** Writes and waits for the stream to take it (a slow pipe must not make the CLI buffer without bound). */
export function write(stream: NodeJS.WritableStream, text: string | Uint8Array): Promise<void> | void {
  if (!stream.write(text)) return new Promise((resolve) => stream.once('drain', resolve));
}
