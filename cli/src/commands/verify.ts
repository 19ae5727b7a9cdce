/**
 * `sbx verify`: checks jobs' signed receipts (client/src/receipt.ts). The jobs are fetched by id, or
 * read from files of job documents (`--file`: what `sbx inspect` or the API printed, one document or
 * an array). The key is the server's (GET /v1/receipt-keys) unless `--key` names a public key held
 * from elsewhere: only then does a verified receipt prove more than "unchanged since the server
 * signed it", and stderr says so. One line per job, a verified one naming the document's fields the
 * signature does not cover ("not signed: placement, ..."; json: `unsigned`); an id or file that cannot be
 * read (or holds no job document) is an error on stderr and the others go on. Exit 0 when every
 * receipt verified, else 1.
 */
import { checkReceipt, type Job, type TrustedKey } from '../../../client/src/index.ts';
import { parseReceiptPublicKeys, receiptKeyId } from '../../../core/src/receipts/public-keys.ts';
import { flagBool, flagString } from '../args.ts';
import { readCappedFile } from '../capped-file.ts';
import { CliError, UsageError } from '../cli-error.ts';
import { FORMAT_FLAG, write, type Command, type Context } from '../command.ts';
import { eachJob } from '../each-job.ts';
import { parseFormat } from '../output.ts';

/**
 * The most `--file` reads of one file: a job document with both streams at the largest
 * SBX_MAX_OUTPUT_BYTES default (16 MiB each) fits with room for JSON escaping; more is refused
 * (file_too_large) before it takes the CLI's memory (/dev/zero, a FIFO without end, a huge file).
 */
export const MAX_DOCUMENT_FILE_BYTES = 128 * 2 ** 20;
/** The most `--key` reads: a PEM bundle of public keys, a few hundred bytes each. */
export const MAX_KEY_FILE_BYTES = 2 ** 20;

export const verifyCommand: Command = {
  name: 'verify',
  usage: 'verify [OPTIONS] JOB|FILE [JOB|FILE...]',
  summary: 'Verify the signed receipts of one or more jobs',
  flags: [
    { name: 'key', type: 'string', value: 'file', help: 'Public keys (PEM, one or more: the current and retired ones) to verify with, instead of the server\'s' },
    { name: 'file', type: 'boolean', help: 'The arguments are files of job documents (JSON), not job ids' },
    FORMAT_FLAG,
  ],
  async run(ctx, args) {
    if (args.positionals.length === 0) throw new UsageError('"sbx verify" requires at least 1 argument.\nUsage: sbx verify [OPTIONS] JOB|FILE [JOB|FILE...]', 'verify');
    const fromFiles = flagBool(args, 'file');
    const keyFile = flagString(args, 'key');
    const keys = await trustedKeys(ctx, keyFile);
    const json = parseFormat(flagString(args, 'format')) === 'json'; // json: each result with its payload
    // The server's keys prove only that its receipts are unchanged since it signed them: a server that
    // is not the one you trust lists its own key and verifies its own documents. Said every time.
    if (keyFile === undefined) await write(ctx.stderr, `sbx: checking with the keys the server lists (${ctx.settings.host}/v1/receipt-keys), not a key held apart: "verified" means unchanged since that server signed it; give --key receipt.pub to check it is the service you trust\n`);
    let unverified = 0;
    // An id that cannot be fetched, or a file that cannot be read, is an error on its own line; the others go on.
    const code = await eachJob(ctx, args.positionals, async (arg) => {
      const jobs = fromFiles ? readJobs(arg) : [await ctx.client().get(arg)];
      for (const job of jobs) {
        const check = checkReceipt(job, keys);
        if (!check.ok) unverified++;
        const p = check.ok ? check.payload : null;
        const line = json
          ? JSON.stringify(check.ok ? { id: job.id, verified: true, keyId: check.keyId, keyFrom: keyFile === undefined ? 'server' : 'file', payload: p, unsigned: check.unsigned } : { id: job.id, verified: false, code: check.code, reason: check.reason })
          : check.ok
            ? `${job.id}\tverified (key ${check.keyId})\t${p!.status}${p!.exitCode === null ? '' : ` exit ${p!.exitCode}`}\t${p!.image}@${p!.imageDigest}\tstdout ${p!.stdout.bytes} B sha256:${p!.stdout.sha256}${unsignedNote(check.unsigned)}`
            : `${job.id}\tNOT verified\t${check.reason}`;
        await write(ctx.stdout, `${line}\n`);
      }
    });
    return unverified ? 1 : code;
  },
};

/**
 * The document's fields no signature vouches for (placement, most timings, ...), named on the
 * verified line: "verified" is of the signed fields only, and a reader of the document should not
 * take the others as checked.
 */
function unsignedNote(unsigned: string[]): string {
  return unsigned.length ? `\tnot signed: ${unsigned.join(', ')}` : '';
}

/** `--key`'s public key, or the server's receipt keys. */
async function trustedKeys(ctx: Context, keyFile: string | undefined): Promise<TrustedKey[]> {
  if (keyFile === undefined) {
    const keys = await ctx.client().receiptKeys();
    if (keys.length === 0) throw new CliError('the server lists no receipt keys (its API has neither SBX_RECEIPT_PUBLIC_KEYS_FILE nor SBX_RECEIPT_KEY_FILE); give --key to check documents signed elsewhere');
    return keys;
  }
  let text: string;
  try {
    text = readCappedFile(keyFile, MAX_KEY_FILE_BYTES, 'sbx verify --key');
  } catch (e) {
    throw new CliError(`--key ${keyFile}: ${e instanceof CliError ? e.message : `cannot be read (${(e as { code?: string }).code ?? (e as Error).message})`}`);
  }
  const parsed = parseReceiptPublicKeys(text);
  if (!parsed.ok) throw new CliError(`--key ${keyFile}: ${parsed.problems.join('; ')}`);
  // The current key and retired ones: each receipt is checked with the one its keyId names.
  return parsed.keys.map((key) => ({ keyId: receiptKeyId(key), key }));
}

function readJobs(path: string): Job[] {
  const text = readDocumentFile(path);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new CliError(`cannot read it as JSON: ${(e as Error).message}`);
  }
  const list = Array.isArray(v) ? v : [v];
  // An empty array verified nothing: before, it printed nothing and exited 0, as if every receipt verified.
  if (list.length === 0) throw new CliError('holds no job document (an empty array): nothing to verify');
  if (!list.every((j) => typeof j === 'object' && j !== null && typeof (j as Job).id === 'string')) throw new CliError(`expected a job document or an array of them (as sbx inspect prints)`);
  return list as Job[];
}

/** The file's text, at most MAX_DOCUMENT_FILE_BYTES of it (FileTooLargeError is thrown as it is: its own line, exit 1). */
function readDocumentFile(path: string): string {
  try {
    return readCappedFile(path, MAX_DOCUMENT_FILE_BYTES, 'sbx verify --file');
  } catch (e) {
    if (e instanceof CliError) throw e;
    throw new CliError(`cannot read it as JSON: ${(e as Error).message}`);
  }
}
