/**
 * An attach socket's input on its way to the job's stdin stream (core/src/stdin-stream.ts), in
 * order. Consecutive stdin bytes share one frame of up to MAX_FRAME_BYTES, copied into one buffer,
 * so a client sending many tiny messages costs that buffer, not an object and a Redis command per
 * message: 300,000 one-byte messages held 194 MiB of the API (P47). Past MAX_PENDING of input not yet
 * in Redis (each message counted as at least MIN_COST), `pause(true)` stops reading the socket until
 * half of it has gone.
 */
import { MAX_FRAME_BYTES, type StdinFrame } from '../../core/src/stdin-stream.ts';

/** Input accepted from a client but not yet in Redis, past which its socket is paused. */
const MAX_PENDING = 1 << 20;
/** What a message counts for at least: its share of the bookkeeping, however few bytes it carries. */
const MIN_COST = 256;

type Waiting = { frame: StdinFrame; cost: number } | { bytes: Buffer; length: number; cost: number };

export class AttachInput {
  private readonly waiting: Waiting[] = [];
  private pending = 0;
  private paused = false;
  private sending = false;

  constructor(
    /** Appends one frame to the job's stdin (StdinWriter.append); rejections go to `failed`. */
    private readonly send: (frame: StdinFrame) => Promise<void>,
    private readonly failed: (e: unknown) => void,
    private readonly pause: (on: boolean) => void,
  ) {}

  push(frame: StdinFrame): void {
    const cost = Math.max(MIN_COST, frame.type === 'data' ? frame.data.length : 0);
    this.pending += cost;
    if (!this.paused && this.pending > MAX_PENDING) {
      this.paused = true;
      this.pause(true);
    }
    const last = this.waiting[this.waiting.length - 1];
    if (frame.type === 'data' && frame.data.length < MAX_FRAME_BYTES) {
      if (last && 'bytes' in last && last.length + frame.data.length <= MAX_FRAME_BYTES) {
        frame.data.copy(last.bytes, last.length);
        last.length += frame.data.length;
        last.cost += cost;
      } else {
        const bytes = Buffer.allocUnsafe(MAX_FRAME_BYTES);
        frame.data.copy(bytes);
        this.waiting.push({ bytes, length: frame.data.length, cost });
      }
    } else {
      this.waiting.push({ frame, cost });
    }
    if (!this.sending) void this.drain();
  }

  private async drain(): Promise<void> {
    this.sending = true;
    for (let next = this.waiting.shift(); next; next = this.waiting.shift()) {
      try {
        await this.send('bytes' in next ? { type: 'data', data: next.bytes.subarray(0, next.length) } : next.frame);
      } catch (e) {
        this.failed(e);
      } finally {
        this.pending -= next.cost;
        if (this.paused && this.pending <= MAX_PENDING / 2) {
          this.paused = false;
          this.pause(false);
        }
      }
    }
    this.sending = false;
  }
}
