/**
 * `GET /v1/jobs/{id}/attach` over a WebSocket (the `ws` package): the job's output and exit as they
 * come, and for interactive jobs its stdin, EOF, window size and signals. Frame format: README
 * "Attach". Sending waits while more than HIGH_WATER bytes are queued on the socket, so a caller that
 * awaits `write()` streams any amount of input with bounded memory (the server stops reading while
 * the job's input stream is full: backpressure all the way to here).
 *
 * A refused upgrade rejects with the same typed error as any other call (errors.ts: the API's code,
 * message and Retry-After, read from its answer); no answer at all, with SbxConnectionError.
 */
import WebSocket from 'ws';
import { apiErrorFromAnswer, connectionError } from './errors.ts';
import type { Job } from './types.ts';

export const CHANNEL = { stdin: 0, stdout: 1, stderr: 2 } as const;
const HIGH_WATER = 1 << 20;
/** Stdin bytes per message: the server closes a socket whose message is over 256 KiB of stdin (P47). */
export const STDIN_FRAME_BYTES = 64 * 1024;
const POLL_MS = 2;
/** A refusal's body is the API's small error envelope; more than this is not read. */
const REFUSAL_BODY_BYTES = 64 * 1024;

export interface AttachOptions {
  baseUrl: string;
  apiKey?: string;
  /** Replay the job's output from its start (`?logs=true`), not just what comes after attaching. */
  logs?: boolean;
  /** Called for each output chunk, in order. */
  onOutput(stream: 'stdout' | 'stderr', data: Buffer): void;
  onStatus?(status: string): void;
}

export interface Attachment {
  /** The job's final document (the exit frame), or null if the socket closed first. */
  readonly ended: Promise<Job | null>;
  write(data: Buffer | string): Promise<void>;
  eof(): void;
  resize(rows: number, cols: number): void;
  signal(name: string): void;
  close(): void;
}

/**
 * Attaches to job `id`. Rejects with the API's typed error when it refuses (SbxNotFoundError,
 * SbxUnauthorizedError, SbxRateLimitedError with `retryAfter`, SbxUnavailableError, ...), or with
 * SbxConnectionError when the API cannot be reached.
 */
export function attachJob(id: string, opts: AttachOptions): Promise<Attachment> {
  const baseUrl = opts.baseUrl.replace(/\/+$/, '');
  const url = new URL(`${baseUrl}/v1/jobs/${encodeURIComponent(id)}/attach`);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  if (opts.logs) url.searchParams.set('logs', 'true');
  const ws = new WebSocket(url, { headers: opts.apiKey ? { authorization: `Bearer ${opts.apiKey}` } : {}, perMessageDeflate: false });
  let exitDoc: Job | null = null;
  let resolveEnded!: (j: Job | null) => void;
  const ended = new Promise<Job | null>((r) => { resolveEnded = r; });
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (!isBinary) {
      const m = JSON.parse(data.toString('utf8')) as { type: string; status?: string; code?: string; message?: string };
      if (m.type === 'exit') {
        const { type: _t, ...doc } = m;
        exitDoc = doc as unknown as Job;
      } else if (m.type === 'status' && m.status) opts.onStatus?.(m.status);
      else if (m.type === 'error') process.emitWarning(`attach: ${m.code}: ${m.message}`);
      return;
    }
    if (data[0] === CHANNEL.stdout) opts.onOutput('stdout', data.subarray(1));
    else if (data[0] === CHANNEL.stderr) opts.onOutput('stderr', data.subarray(1));
  });
  ws.on('close', () => resolveEnded(exitDoc));
  const open = (): boolean => ws.readyState === WebSocket.OPEN;
  const attachment: Attachment = {
    ended,
    async write(data) {
      const buf = typeof data === 'string' ? Buffer.from(data) : data;
      for (let at = 0; at < buf.length; at += STDIN_FRAME_BYTES) {
        while (open() && ws.bufferedAmount > HIGH_WATER) await new Promise((r) => setTimeout(r, POLL_MS));
        if (!open()) return;
        ws.send(Buffer.concat([Buffer.from([CHANNEL.stdin]), buf.subarray(at, at + STDIN_FRAME_BYTES)]));
      }
    },
    eof() { if (open()) ws.send(JSON.stringify({ type: 'eof' })); },
    resize(rows, cols) { if (open() && rows > 0 && cols > 0) ws.send(JSON.stringify({ type: 'resize', rows, cols })); },
    signal(name) { if (open()) ws.send(JSON.stringify({ type: 'signal', signal: name })); },
    close() { ws.close(); },
  };
  return new Promise((resolve, reject) => {
    let refused = false;
    ws.once('open', () => resolve(attachment));
    // The API's answer to a refused upgrade: its error envelope, status and Retry-After.
    ws.once('unexpected-response', (_req, res) => {
      refused = true;
      const chunks: Buffer[] = [];
      let size = 0;
      const settle = () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // not the envelope: the message quotes the text
        }
        const headers = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') headers.set(k, v);
        const e = apiErrorFromAnswer(res.statusCode ?? 0, body, headers);
        e.message = `cannot attach to job ${id}: ${e.message}`;
        reject(e);
        ws.terminate();
      };
      res.on('data', (c: Buffer) => {
        if (size < REFUSAL_BODY_BYTES) chunks.push(c);
        size += c.length;
      });
      res.once('end', settle);
      res.once('error', settle);
    });
    // Kept for the socket's life: a later error (a reset connection) ends it through 'close'.
    ws.on('error', (e) => {
      if (!refused) reject(connectionError(baseUrl, e));
    });
  });
}
