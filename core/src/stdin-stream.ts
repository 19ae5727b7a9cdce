/**
 * Interactive jobs: what attached clients send to the job (stdin bytes, EOF, window sizes,
 * signals, "still attached" beats) goes through one Redis Stream per job, `<p>:{job:<id>}:stdin`,
 * from whichever API holds the WebSocket to whichever worker runs the job. In order (one stream),
 * no loss (the writer waits while the stream is full instead of trimming), bounded (at most
 * MAX_UNREAD_FRAMES frames of at most MAX_FRAME_BYTES each not yet applied; the worker deletes each
 * frame once applied), and gone with the job (the finishing transition deletes the key;
 * a safety TTL covers a worker that dies first).
 */
import type { NumberedWriter } from './numbered-writer.ts';
import { defineScripts, luaScript } from './redis-scripts.ts';
import type { RedisClient } from './redis.ts';
import type { RedisKeys } from './redis-keys.ts';

export type StdinFrame =
  | { type: 'data'; data: Buffer }
  | { type: 'eof' }
  | { type: 'resize'; rows: number; cols: number }
  | { type: 'signal'; signal: string }
  /** An attached client is there (sent every HEARTBEAT_MS while attached): keeps the job from idling out. */
  | { type: 'attached' };

export const MAX_FRAME_BYTES = 32 * 1024;
export const MAX_UNREAD_FRAMES = 64;
/** How often an API beats for each attached client (at most: sooner for short idle limits). */
export const HEARTBEAT_MS = 5_000;
const SAFETY_TTL_MS = 25 * 3_600_000;
const FULL_RETRY_MS = 5;
/** A job that does not read its stdin costs each writer one look this often, not one every 5 ms. */
const FULL_RETRY_MAX_MS = 100;

const SCRIPTS = { sbxStdinAppend: luaScript('stdinAppend-2') };

interface ScriptedClient {
  sbxStdinAppend(state: string, stream: string, max: number, ttlMs: number, type: string, payload: string | Buffer, writer: string, number: number): Promise<string>;
}

const CODE = { data: 'd', eof: 'e', resize: 'r', signal: 's', attached: 'a' } as const;

function encode(f: StdinFrame): [string, string | Buffer] {
  switch (f.type) {
    case 'data': return [CODE.data, f.data];
    case 'resize': return [CODE.resize, `${f.rows}x${f.cols}`];
    case 'signal': return [CODE.signal, f.signal];
    default: return [CODE[f.type], ''];
  }
}

function decode(type: string, payload: Buffer): StdinFrame | null {
  switch (type) {
    case CODE.data: return { type: 'data', data: payload };
    case CODE.eof: return { type: 'eof' };
    case CODE.attached: return { type: 'attached' };
    case CODE.signal: return { type: 'signal', signal: payload.toString() };
    case CODE.resize: {
      const m = /^(\d+)x(\d+)$/.exec(payload.toString());
      return m ? { type: 'resize', rows: Number(m[1]), cols: Number(m[2]) } : null;
    }
    default: return null;
  }
}

/** Why a frame was not appended: the job has ended (its final status) or does not exist (''). */
export class StdinClosedError extends Error {
  constructor(readonly status: string) {
    super(status ? `the job has ended (${status})` : 'the job does not exist');
  }
}

export class StdinWriter {
  private readonly scripted: ScriptedClient;

  constructor(redis: RedisClient, private readonly keys: RedisKeys) {
    this.scripted = defineScripts<ScriptedClient>(redis, SCRIPTS);
  }

  /**
   * One frame, or nothing when the stream is full (the job is not reading): for frames that only say
   * something is there (an attached client's heartbeat), which a full stream already says. Returns
   * whether it was appended; throws StdinClosedError once the job has ended.
   */
  async appendUnlessFull(id: string, frame: StdinFrame): Promise<boolean> {
    const [type, payload] = encode(frame);
    return this.appendOnce(id, type, payload, '', 0);
  }

  /**
   * Append frames in order; data longer than MAX_FRAME_BYTES is split. Waits while the stream is
   * full (the caller stops reading its client meanwhile: backpressure). Throws StdinClosedError
   * once the job has ended. `from`: the client's NumberedWriter, numbering its frames (one sent again after
   * a reconnect is appended once); without it (beats) a frame could be appended twice.
   */
  async append(id: string, frame: StdinFrame, signal?: AbortSignal, from?: NumberedWriter): Promise<void> {
    if (frame.type === 'data' && frame.data.length > MAX_FRAME_BYTES) {
      for (let off = 0; off < frame.data.length; off += MAX_FRAME_BYTES) {
        await this.append(id, { type: 'data', data: frame.data.subarray(off, off + MAX_FRAME_BYTES) }, signal, from);
      }
      return;
    }
    const [type, payload] = encode(frame);
    const number = from ? from.next() : 0;
    // While the job does not read, looks again after 5, 10, 20 … ms, at most FULL_RETRY_MAX_MS apart.
    for (let wait = FULL_RETRY_MS; !(await this.appendOnce(id, type, payload, from?.name ?? '', number)); wait = Math.min(2 * wait, FULL_RETRY_MAX_MS)) {
      if (signal?.aborted) throw signal.reason;
      await new Promise((res) => setTimeout(res, wait));
    }
  }

  /** One try: true when appended (or already there), false when the stream is full; StdinClosedError once the job has ended. */
  private async appendOnce(id: string, type: string, payload: Buffer | string, writer: string, number: number): Promise<boolean> {
    const r = await this.scripted.sbxStdinAppend(this.keys.jobState(id), this.keys.jobStdin(id), MAX_UNREAD_FRAMES, SAFETY_TTL_MS, type, payload, writer, number);
    if (r === 'full') return false;
    if (/^\d+-\d+$/.test(r)) return true;
    throw new StdinClosedError(r);
  }
}

/** A frame this version cannot read: a type a newer API writes, or a malformed payload (a resize not `<rows>x<cols>`). */
export interface UnreadFrame {
  type: string;
  bytes: number;
}

/**
 * The worker's side: reads a job's frames in order on a connection of its own (XREAD BLOCK holds
 * it), hands each to `apply` (awaited: a job that does not read its stdin holds the stream full,
 * which holds the writers), then deletes it. A frame it cannot read goes to `unread`, and is deleted.
 */
export class StdinReader {
  private stopped = false;
  private readonly conn: RedisClient;

  constructor(private readonly redis: RedisClient, private readonly keys: RedisKeys, private readonly id: string) {
    this.conn = redis.duplicate();
    this.conn.on('error', () => {}); // retried by ioredis; the loop below sees failures
  }

  async run(apply: (f: StdinFrame) => Promise<void>, unread: (f: UnreadFrame) => void = () => {}): Promise<void> {
    const key = this.keys.jobStdin(this.id);
    let last = '0-0';
    while (!this.stopped) {
      let res: Array<[Buffer, Array<[Buffer, Buffer[]]>]> | null;
      try {
        res = (await this.conn.xreadBuffer('COUNT', 64, 'BLOCK', 1000, 'STREAMS', key, last)) as typeof res;
      } catch {
        if (this.stopped) break;
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      for (const [, entries] of res ?? []) {
        for (const [idBuf, fields] of entries) {
          last = idBuf.toString();
          const { type, payload } = frameFields(fields);
          const f = decode(type, payload);
          if (!f) unread({ type, bytes: payload.length });
          else if (!this.stopped) await apply(f);
          await this.redis.xdel(key, last).catch(() => {});
        }
      }
    }
  }

  /** Stop reading (the job ended) and drop the stream. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.conn.disconnect();
    await this.redis.del(this.keys.jobStdin(this.id)).catch(() => {});
  }
}

function frameFields(fields: Buffer[]): { type: string; payload: Buffer } {
  let type = '';
  let payload: Buffer = Buffer.alloc(0);
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const k = fields[i]!.toString();
    if (k === 't') type = fields[i + 1]!.toString();
    else if (k === 'p') payload = fields[i + 1]!;
  }
  return { type, payload };
}
