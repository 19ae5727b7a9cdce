/**
 * Stall detection for one registry transfer (a request, from sending it until its body is consumed
 * or dropped). undici's own timeouts only see idle gaps, so a registry sending one byte every few
 * seconds would hold a pull forever; this watch aborts its signal when fewer than `stallBytes`
 * arrive over any `stallMs` window. Time the consumer holds the transfer back (back-pressure from
 * unpacking) does not count: the window starts again after it.
 */

export interface StallRule {
  /** Window length (SBX_PULL_STALL_MS). */
  stallMs: number;
  /** Fewest bytes that must arrive in any window (SBX_PULL_STALL_BYTES). */
  stallBytes: number;
}

export const DEFAULT_STALL_RULE: StallRule = { stallMs: 30_000, stallBytes: 64 * 1024 };

/** Checks per window: a stall is seen at most stallMs / TICKS_PER_WINDOW after the window ends. */
const TICKS_PER_WINDOW = 10;

interface Sample {
  at: number;
  received: number;
}

export class TransferWatch {
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout;
  private received = 0;
  private samples: Sample[];
  private heldBack: () => boolean = () => false;

  constructor(
    private readonly rule: StallRule,
    /** The error the signal aborts with (it should name the host and the rule). */
    private readonly stalledError: () => Error,
  ) {
    this.samples = [{ at: performance.now(), received: 0 }];
    this.timer = setInterval(() => this.check(), Math.max(5, Math.floor(rule.stallMs / TICKS_PER_WINDOW)));
    this.timer.unref();
  }

  /** Aborts (with the stall error) when the transfer stalls. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get stalled(): boolean {
    return this.controller.signal.aborted;
  }

  /** The stall error, once stalled. */
  get error(): Error {
    return this.controller.signal.reason as Error;
  }

  /** Counts bytes that arrived. */
  add(bytes: number): void {
    this.received += bytes;
  }

  /** `probe` says whether the consumer holds the transfer back right now (a full pipe). */
  holdsBackWhen(probe: () => boolean): void {
    this.heldBack = probe;
  }

  /** The transfer is over (consumed, failed or dropped). Idempotent. */
  stop(): void {
    clearInterval(this.timer);
  }

  private check(): void {
    const now = performance.now();
    if (this.heldBack()) {
      this.samples = [{ at: now, received: this.received }];
      return;
    }
    this.samples.push({ at: now, received: this.received });
    const windowStart = now - this.rule.stallMs;
    // Keep the newest sample at or before the window's start, and everything after it.
    while (this.samples.length > 1 && this.samples[1]!.at <= windowStart) this.samples.shift();
    const first = this.samples[0]!;
    if (first.at > windowStart) return; // not watched for a whole window yet
    if (this.received - first.received >= this.rule.stallBytes) return;
    this.stop();
    this.controller.abort(this.stalledError());
  }
}
