/**
 * Signed execution receipts: what ran (image digest, command, limits), where (worker, kernel), how it
 * ended (status, exit code, usage, timings) and what it read and wrote (SHA-256 and size of its
 * stdin, of each input file, of the output files it left, and of everything it wrote to stdout and stderr, kept or not), signed by the worker with
 * the server's Ed25519 key (SBX_RECEIPT_KEY_FILE). Anyone holding the public key
 * (GET /v1/receipt-keys) can check that a result came from this service unchanged: a grader's
 * score, a CI step's log, an RL reward (client/src/receipt.ts checkReceipt, `sbx verify`).
 *
 * The signed bytes are `payload`, a JSON text carried as a string: nothing is re-serialized before
 * verification, so no canonical form is needed.
 */
import { createHash, sign, type KeyObject } from 'node:crypto';
import os from 'node:os';
import { inputFileData, type JobDocument, type JobReceipt, type JobSpec } from '../job-spec.ts';
import { receiptKeyId } from './public-keys.ts';

/** This host's kernel release (uname -r), read once. */
const KERNEL = os.release();

export interface StreamDigest {
  bytes: number;
  sha256: string;
}

export interface ReceiptPayload {
  v: 1;
  jobId: string;
  tenant: string;
  image: string;
  imageDigest: string | null;
  command: string[] | null;
  entrypoint: string[] | null;
  workdir: string | null;
  user: string | null;
  limits: Record<string, unknown>;
  status: string;
  exitCode: number | null;
  signal: string | null;
  /** Why the job ended so, when its status alone does not say (e.g. output_idle_timeout); null: no error. Absent from receipts signed before 2026-12-07. */
  error?: JobDocument['error'];
  /** The request's labels ({} when none): what a grader or a CI ties the result to (a submission, a commit). Absent from receipts signed before 2026-12-07 (their labels were not signed). */
  labels?: Record<string, string>;
  worker: string;
  /** The worker host's kernel release (uname -r). */
  kernel: string;
  startedAt: string | null;
  finishedAt: string;
  usage: Record<string, unknown> | null;
  /**
   * The job's stdin: the request's, then (jobs with openStdin or a tty) every byte written to it
   * through attach, in order. Null: none at all.
   */
  stdin: StreamDigest | null;
  /**
   * Jobs with openStdin or a tty: their input came (also) live, through attach (`stdin` covers it),
   * and `signals` were sent to them that way. Absent for any other job.
   */
  interactive?: { openStdin: boolean; tty: boolean; signals: number };
  /** The job's input files (JobRequest.files) in order, as written; absent when it had none. */
  files?: Array<StreamDigest & { path: string; mode: number }>;
  /** What the job's outputFiles collected (path, size, the SHA-256 of the kept bytes); absent when it asked for none. */
  outputFiles?: JobDocument['outputFiles'];
  /** Jobs with network "egress": the hosts they were held to (none: any public host) and what went through their proxy; absent: loopback only. */
  network?: { mode: 'egress'; egressHosts: string[] | null; connections: number; refused: number; bytesSent: number; bytesReceived: number };
  /** Everything the job wrote, whether its limits kept it or not. */
  stdout: StreamDigest;
  stderr: StreamDigest;
  outputTruncated: boolean;
}

export function digestOf(data: string | Buffer): StreamDigest {
  return { bytes: Buffer.byteLength(data), sha256: createHash('sha256').update(data).digest('hex') };
}

export function signReceipt(payload: ReceiptPayload, privateKey: KeyObject): JobReceipt {
  const text = JSON.stringify(payload);
  return { payload: text, signature: sign(null, Buffer.from(text, 'utf8'), privateKey).toString('base64'), algorithm: 'ed25519', keyId: receiptKeyId(privateKey) };
}

/**
 * The receipt of a finished job that ran: `final` as it is recorded, `written` from the output sink,
 * `input` (interactive jobs) what their session gave them.
 */
export function receiptFor(final: JobDocument, spec: JobSpec, written: { stdout: StreamDigest; stderr: StreamDigest }, privateKey: KeyObject, input?: { stdin: StreamDigest; signals: number }): JobReceipt {
  const stdin = input ? (input.stdin.bytes === 0 && spec.stdin === null ? null : input.stdin) : spec.stdin === null ? null : digestOf(spec.stdin);
  return signReceipt({
    v: 1,
    jobId: final.id,
    tenant: spec.tenant,
    image: final.image,
    imageDigest: final.imageDigest,
    command: final.command,
    entrypoint: final.entrypoint,
    workdir: spec.workdir,
    user: spec.user,
    limits: { ...final.limits },
    status: final.status,
    exitCode: final.exitCode,
    signal: final.signal,
    error: final.error ?? null,
    labels: { ...final.labels },
    worker: final.worker ?? '',
    kernel: KERNEL,
    startedAt: final.timings.startedAt,
    finishedAt: final.timings.finishedAt!,
    usage: final.usage ? { ...final.usage } : null,
    stdin,
    ...(input ? { interactive: { openStdin: spec.openStdin ?? false, tty: spec.tty ?? false, signals: input.signals } } : {}),
    ...(spec.files?.length ? { files: spec.files.map((f) => ({ path: f.path, mode: f.mode, ...digestOf(inputFileData(f)) })) } : {}),
    ...(final.outputFiles ? { outputFiles: final.outputFiles } : {}),
    ...(spec.network === 'egress' ? { network: networkOf(final, spec) } : {}),
    stdout: written.stdout,
    stderr: written.stderr,
    outputTruncated: final.outputTruncated,
  }, privateKey);
}

function networkOf(final: JobDocument, spec: JobSpec): NonNullable<ReceiptPayload['network']> {
  const e = final.egress;
  return { mode: 'egress', egressHosts: spec.egressHosts ?? null, connections: e?.connections ?? 0, refused: e?.refused ?? 0, bytesSent: e?.bytesSent ?? 0, bytesReceived: e?.bytesReceived ?? 0 };
}
