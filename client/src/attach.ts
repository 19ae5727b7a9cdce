/**
 * `GET /v1/jobs/{id}/attach` over a WebSocket (undici's): the job's output and exit as they come,
 * and for interactive jobs its stdin, EOF, window size and signals. Frame format: README "Attach".
 * Sending waits while more than HIGH_WATER bytes are queued on the socket, so a caller that awaits
 * `write()` streams any amount of input with bounded memory (the server stops reading while the
 * job's input stream is full: backpressure all the way to here).
 */
import { WebSocket } from 'undici';
import { apiErrorFromAnswer } from './errors.ts';
import { readBody, Transport } from './http.ts';
import type { Job } from './types.ts';

export const CHANNEL = { stdin: 0, stdout: 1, stderr: 2 } as const;
const HIGH_WATER = 1 << 20;
/** Stdin bytes per message: the server closes a socket whose message is over 256 KiB of stdin (P47). */
export const STDIN_FRAME_BYTES = 64 * 1024;
const POLL_MS = 2;

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

export class AttachError extends Error {
  constructor(message: string, readonly code: string) {
    super(message);
    this.name = 'AttachError';
  }
}

export function attachJob(id: string, opts: AttachOptions): Promise<Attachment> {
  const url = new URL(`${opts.baseUrl.replace(/\/+$/, '')}/v1/jobs/${encodeURIComponent(id)}/attach`);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  if (opts.logs) url.searchParams.set('logs', 'true');
  const ws = new WebSocket(url, { headers: opts.apiKey ? { authorization: `Bearer ${opts.apiKey}` } : {} } as never);
  ws.binaryType = 'arraybuffer';
  let exitDoc: Job | null = null;
  let resolveEnded!: (j: Job | null) => void;
  const ended = new Promise<Job | null>((r) => { resolveEnded = r; });
  ws.addEventListener('message', (ev) => {
    if (typeof ev.data === 'string') {
      const m = JSON.parse(ev.data) as { type: string; status?: string; code?: string; message?: string };
      if (m.type === 'exit') {
        const { type: _t, ...doc } = m;
        exitDoc = doc as unknown as Job;
      } else if (m.type === 'status' && m.status) opts.onStatus?.(m.status);
      else if (m.type === 'error') process.emitWarning(`attach: ${m.code}: ${m.message}`);
      return;
    }
    const buf = Buffer.from(ev.data as ArrayBuffer);
    if (buf[0] === CHANNEL.stdout) opts.onOutput('stdout', buf.subarray(1));
    else if (buf[0] === CHANNEL.stderr) opts.onOutput('stderr', buf.subarray(1));
  });
  ws.addEventListener('close', () => resolveEnded(exitDoc));
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
    ws.addEventListener('open', () => resolve(attachment), { once: true });
    ws.addEventListener('error', (ev) => {
      if (ws.readyState === WebSocket.OPEN) return;
      const fallback = new AttachError(`cannot attach to job ${id}: ${(ev as ErrorEvent).message ?? 'connection refused or upgrade denied'}`, 'attach_failed');
      void whyRefused(id, opts).then((why) => reject(why ?? fallback), () => reject(fallback));
    }, { once: true });
  });
}

/**
 * A WebSocket in the browser's API (undici's) cannot read the answer to a refused upgrade, which
 * says why in the API's error body. The same question as a plain GET of the job, with the same key,
 * gets that answer for the usual causes (an unknown job, a wrong key); null if the job reads fine.
 */
async function whyRefused(id: string, opts: AttachOptions): Promise<AttachError | null> {
  const transport = new Transport({ baseUrl: opts.baseUrl, ...(opts.apiKey ? { apiKey: opts.apiKey } : {}) });
  try {
    const answer = await transport.send({ method: 'GET', path: `/v1/jobs/${encodeURIComponent(id)}`, signal: AbortSignal.timeout(10_000) });
    const body = await readBody(answer.body);
    if (answer.status < 400) return null;
    const e = apiErrorFromAnswer(answer.status, body, answer.headers);
    return new AttachError(`cannot attach to job ${id}: ${e.message} (${e.code})`, e.code);
  } finally {
    await transport.close();
  }
}
