/**
 * `sbx`: a Docker-shaped command line for the sbx HTTP API, through the typed client only.
 * `sbx [-H HOST] [--api-key KEY] COMMAND [OPTIONS] [ARGS]`; every command has --help; errors are
 * one line on stderr (`sbx: ...`), never a stack trace; exit codes follow Docker (125 = sbx itself).
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { SbxApiError, SbxClient, SbxConnectionError } from '../../client/src/index.ts';
import { parseFlags, flagBool, flagString, type FlagSpec } from './args.ts';
import { CliError, UsageError } from './cli-error.ts';
import { OutputClosedError, watchOutput, type Command, type Context, type Io } from './command.ts';
import { attach } from './commands/attach.ts';
import { completion } from './commands/completion.ts';
import { cp } from './commands/cp.ts';
import { images, pull, rmi } from './commands/images.ts';
import { inspect, kill, stop, wait } from './commands/jobs.ts';
import { stats } from './commands/stats.ts';
import { login } from './commands/login.ts';
import { logs } from './commands/logs.ts';
import { ps } from './commands/ps.ts';
import { run } from './commands/run.ts';
import { verifyCommand } from './commands/verify.ts';
import { workers } from './commands/workers.ts';
import { loadSettings, type Settings } from './settings.ts';

const GLOBAL_FLAGS: FlagSpec[] = [
  { name: 'host', short: 'H', type: 'string', value: 'url', help: 'The sbx API (default $SBX_HOST, the config file, or http://127.0.0.1:8080)' },
  { name: 'api-key', type: 'string', value: 'key', help: 'API key (default $SBX_API_KEY or the config file)' },
  { name: 'help', short: 'h', type: 'boolean', help: 'Print usage' },
  { name: 'version', short: 'v', type: 'boolean', help: 'Print version information and quit' },
];
const HELP_FLAG: FlagSpec = { name: 'help', short: 'h', type: 'boolean', help: 'Print usage' };

export const COMMANDS: Command[] = [run, attach, ps, logs, inspect, stats, stop, kill, wait, cp, verifyCommand, images, pull, rmi, workers, login];
COMMANDS.push(completion(() => COMMANDS));

/** The package's version, written in by the bundler (cli/build/bundle.ts); undefined when run unbundled. */
declare const SBX_BUNDLED_VERSION: string | undefined;

function version(): string {
  if (typeof SBX_BUNDLED_VERSION === 'string') return SBX_BUNDLED_VERSION;
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function flagLines(flags: FlagSpec[]): string {
  const left = flags.map((f) => `${f.short ? `-${f.short}, ` : '    '}--${f.name}${f.value ? ` ${f.value}` : ''}`);
  const width = Math.max(...left.map((l) => l.length));
  return flags.map((f, i) => `  ${left[i]!.padEnd(width)}   ${f.help}`).join('\n');
}

function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return `Usage:  sbx [OPTIONS] COMMAND

Run sandboxed jobs on an sbx service, the Docker way.

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)}   ${c.summary}`).join('\n')}

Global Options:
${flagLines(GLOBAL_FLAGS)}

Environment: SBX_HOST, SBX_API_KEY, SBX_CONFIG (config file), DOCKER_CONFIG (registry credentials).
Run 'sbx COMMAND --help' for more information on a command.
`;
}

function commandHelp(c: Command): string {
  return `Usage:  sbx ${c.usage}\n\n${c.summary}\n\nOptions:\n${flagLines([...c.flags, HELP_FLAG])}\n`;
}

/** Splits the global flags (before the command) from the command and its arguments. */
function splitGlobal(argv: string[]): { global: ReturnType<typeof parseFlags>; rest: string[] } {
  const global = parseFlags('', argv, GLOBAL_FLAGS, { stopAtPositional: true });
  return { global, rest: global.positionals };
}

/** Runs the CLI; resolves to the exit code. `io` is the process's by default (tests may pass others). */
export async function main(argv: string[], io: Io): Promise<number> {
  let command: Command | undefined;
  let client: SbxClient | null = null;
  // A reader that went away (EPIPE) fails the stream instead of crashing with a stack trace; the
  // command's next write() sees it and ends the command (OutputClosedError).
  watchOutput(io.stdout);
  watchOutput(io.stderr);
  try {
    const { global, rest } = splitGlobal(argv);
    if (flagBool(global, 'version')) {
      io.stdout.write(`sbx version ${version()}\n`);
      return 0;
    }
    const [name, ...args] = rest;
    if (!name || flagBool(global, 'help') || name === 'help') {
      const topic = name === 'help' ? COMMANDS.find((c) => c.name === args[0]) : undefined;
      io.stdout.write(topic ? commandHelp(topic) : mainHelp());
      return 0;
    }
    command = COMMANDS.find((c) => c.name === name);
    if (!command) throw new CliError(`'${name}' is not a sbx command.\nSee 'sbx --help'.`, 125);
    const parsed = parseFlags(command.name, args, [...command.flags, HELP_FLAG], { stopAtPositional: command.stopAtPositional });
    if (flagBool(parsed, 'help')) {
      io.stdout.write(commandHelp(command));
      return 0;
    }
    let settings: Settings | null = null;
    const getSettings = () => (settings ??= loadSettings({ host: flagString(global, 'host'), apiKey: flagString(global, 'api-key') }, io.env));
    const ctx: Context = {
      ...io,
      get settings() {
        return getSettings();
      },
      client: () => (client ??= new SbxClient({ baseUrl: getSettings().host, apiKey: getSettings().apiKey, userAgent: `sbx-cli/${version()}` })),
    };
    return await command.run(ctx, parsed);
  } catch (e) {
    if (e instanceof OutputClosedError) return e.exitCode;
    io.stderr.write(`sbx: ${describe(e)}\n`);
    if (e instanceof UsageError) return 125;
    if (e instanceof CliError) return e.exitCode;
    return command?.failureExit ?? 1;
  } finally {
    await (client as SbxClient | null)?.close();
  }
}

function describe(e: unknown): string {
  if (e instanceof SbxConnectionError) return `${e.message}; is the API running? (set SBX_HOST or -H)`;
  if (e instanceof SbxApiError) {
    // A detail the message already says (one field's problem) is not said twice.
    const more = e.details.filter((d) => !e.message.includes(d.message));
    const fields = more.length ? ` (${more.map((d) => `${d.path}: ${d.message}`).join('; ')})` : '';
    const retry = e.retryAfter !== null ? ` (retry after ${e.retryAfter}s)` : '';
    return `Error response from the API: ${e.message}${fields}${retry} [${e.code}]`;
  }
  if (e instanceof Error) return e.message;
  return String(e);
}

/** The CLI as a process: this process's arguments and streams; sets the exit code (the output is flushed before exit). */
export async function runProcess(): Promise<void> {
  process.exitCode = await main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env });
}

// `node dist/cli/src/main.js ...` runs it too (cli/bin/sbx.js imports it and calls runProcess()).
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await runProcess();
