/**
 * `sbx login [-u USER] [-p PASS | --password-stdin] REGISTRY`: saves the registry's credentials in
 * the Docker config (docker-config.ts), where `sbx run` reads them for jobs of that registry's
 * images. sbx never sees them until a job is run; the registry checks them at pull.
 */
import { createInterface } from 'node:readline';
import { flagBool, flagString } from '../args.ts';
import { CliError, UsageError } from '../cli-error.ts';
import { write, type Command, type Context } from '../command.ts';
import { registryOf, storeCredentials } from '../docker-config.ts';

export const login: Command = {
  name: 'login',
  usage: 'login [OPTIONS] REGISTRY',
  summary: 'Save credentials for a registry in the Docker config (used by sbx run)',
  flags: [
    { name: 'username', short: 'u', type: 'string', value: 'string', help: 'Username' },
    { name: 'password', short: 'p', type: 'string', value: 'string', help: 'Password (insecure: use --password-stdin)' },
    { name: 'password-stdin', type: 'boolean', help: 'Take the password from stdin' },
  ],
  async run(ctx, args) {
    const [server, ...extra] = args.positionals;
    if (!server || extra.length) throw new UsageError('"sbx login" requires exactly 1 argument (sbx has no default registry).\nUsage: sbx login [OPTIONS] REGISTRY', 'login');
    const registry = registryOf(`${server.replace(/^https?:\/\//, '').replace(/\/.*$/, '')}/x`);
    let password = flagString(args, 'password');
    let username = flagString(args, 'username');
    if (password !== undefined && flagBool(args, 'password-stdin')) throw new UsageError('--password and --password-stdin are mutually exclusive', 'login');
    if (password !== undefined) await write(ctx.stderr, 'WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n');
    if (flagBool(args, 'password-stdin')) {
      if (!username) throw new UsageError('must provide --username with --password-stdin', 'login');
      password = (await readStdin(ctx)).replace(/\r?\n$/, '');
    }
    if (!username) username = await prompt(ctx, 'Username: ', false);
    if (password === undefined) password = await prompt(ctx, 'Password: ', true);
    if (!username || !password) throw new CliError('username and password are required');
    const where = storeCredentials(registry, { username, password }, ctx.env);
    await write(ctx.stdout, `Credentials for ${registry} saved in ${where}\n`);
    return 0;
  },
};

async function readStdin(ctx: Context): Promise<string> {
  let text = '';
  for await (const c of ctx.stdin) text += c.toString();
  return text;
}

/** A line from the terminal; the password without echo. */
async function prompt(ctx: Context, question: string, secret: boolean): Promise<string> {
  if (!ctx.stdin.isTTY) throw new CliError(`cannot prompt for the ${secret ? 'password' : 'username'}: stdin is not a terminal (use --username and --password-stdin)`);
  const rl = createInterface({ input: ctx.stdin, output: ctx.stderr, terminal: true });
  if (secret) (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = (s: string) => {
    if (s.startsWith(question)) ctx.stderr.write(question);
  };
  try {
    return await new Promise<string>((resolve) => rl.question(question, resolve));
  } finally {
    if (secret) ctx.stderr.write('\n');
    rl.close();
  }
}
