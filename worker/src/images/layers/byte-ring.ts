/**
 * A single-producer, single-consumer byte ring in shared memory, between two unpack threads: one
 * decompresses a layer and writes its tar bytes here, the other reads them and writes the files
 * (unpack-pool.ts decides when a layer gets the second thread). Both sides block with
 * `Atomics.wait` (worker threads only); the main thread may only `abort()`.
 *
 * control (Int32): [0] bytes written in all, [1] bytes read in all (both modulo 2^32; the ring is far
 * smaller, so `written - read` is what is buffered), [2] the state: open, ended (the producer wrote
 * its last byte), aborted (the producer or the main thread gave up), stopped (the consumer gave up);
 * [3] and [4] count the changes each side waits for (the consumer: a write or a state change; the
 * producer: a read or a state change). A side reads its count before it looks, and waits only while
 * the count is still that value, so no change between its look and its wait goes unnoticed.
 */

export interface ByteRingBuffers {
  data: SharedArrayBuffer;
  control: SharedArrayBuffer;
}

const WRITTEN = 0;
const READ = 1;
const STATE = 2;
const CONSUMER_WAKE = 3;
const PRODUCER_WAKE = 4;

const OPEN = 0;
const ENDED = 1;
const ABORTED = 2;
const STOPPED = 3;

/** One wait's bound: the waiter looks again after it whatever happens (a safety net, not a poll interval). */
const WAIT_MS = 1000;

/** The ring was closed by the other side: the producer's write or the consumer's read cannot go on. */
export class RingClosedError extends Error {
  constructor(readonly by: 'aborted' | 'stopped') {
    super(by === 'aborted' ? 'the layer was aborted while its files were written' : 'the thread writing the files stopped');
  }
}

export function createByteRing(bytes = 4 * 1024 * 1024): ByteRingBuffers {
  return { data: new SharedArrayBuffer(bytes), control: new SharedArrayBuffer(5 * Int32Array.BYTES_PER_ELEMENT) };
}

export class ByteRing {
  private readonly data: Buffer;
  private readonly control: Int32Array;
  private readonly size: number;

  constructor(buffers: ByteRingBuffers) {
    this.data = Buffer.from(buffers.data);
    this.control = new Int32Array(buffers.control);
    this.size = this.data.length;
  }

  /** Makes the ring empty and open again for the next layer (only while neither side uses it). */
  reset(): void {
    for (let i = 0; i < this.control.length; i++) Atomics.store(this.control, i, 0);
  }

  // ---- producer ----

  /** Copies all of `bytes` in, waiting for room; throws RingClosedError once the ring is aborted or stopped. */
  write(bytes: Uint8Array): void {
    let offset = 0;
    while (offset < bytes.length) {
      const wake = Atomics.load(this.control, PRODUCER_WAKE);
      this.throwIfClosed();
      const written = Atomics.load(this.control, WRITTEN);
      const room = this.size - ((written - Atomics.load(this.control, READ)) >>> 0);
      if (room === 0) {
        Atomics.wait(this.control, PRODUCER_WAKE, wake, WAIT_MS);
        continue;
      }
      const at = (written >>> 0) % this.size;
      const n = Math.min(room, bytes.length - offset, this.size - at);
      this.data.set(bytes.subarray(offset, offset + n), at);
      offset += n;
      Atomics.store(this.control, WRITTEN, (written + n) | 0);
      this.wake(CONSUMER_WAKE);
    }
  }

  /** No more bytes will come. */
  end(): void {
    this.close(ENDED);
  }

  // ---- consumer ----

  /**
   * The next bytes to read, as a view (valid until `consumed()`), waiting for them; null once the
   * producer ended and everything was read. Throws RingClosedError once the ring is aborted.
   */
  next(): Buffer | null {
    for (;;) {
      const wake = Atomics.load(this.control, CONSUMER_WAKE);
      // The state before the counts: a producer sets "ended" after its last write, so every byte
      // of an ended ring is counted by then.
      const state = Atomics.load(this.control, STATE);
      if (state === ABORTED) throw new RingClosedError('aborted');
      const read = Atomics.load(this.control, READ);
      const buffered = (Atomics.load(this.control, WRITTEN) - read) >>> 0;
      if (buffered > 0) {
        const at = (read >>> 0) % this.size;
        return this.data.subarray(at, at + Math.min(buffered, this.size - at));
      }
      if (state === ENDED) return null;
      Atomics.wait(this.control, CONSUMER_WAKE, wake, WAIT_MS);
    }
  }

  /** The first `n` bytes of what next() returned are done with: the producer may reuse them. */
  consumed(n: number): void {
    Atomics.store(this.control, READ, (Atomics.load(this.control, READ) + n) | 0);
    this.wake(PRODUCER_WAKE);
  }

  /** The consumer failed: the producer's next write throws. */
  stop(): void {
    this.close(STOPPED);
  }

  /** Whether the ring was aborted (the consumer checks it between entries, not only between reads). */
  get aborted(): boolean {
    return Atomics.load(this.control, STATE) === ABORTED;
  }

  // ---- either side, or the main thread ----

  /** Gives up: both sides stop at their next step (the consumer also after end(), with bytes left). */
  abort(): void {
    this.close(ABORTED);
  }

  private close(state: number): void {
    // The first failure counts: an abort after the consumer stopped (or the reverse) keeps the first reason.
    for (;;) {
      const now = Atomics.load(this.control, STATE);
      if (now === ABORTED || now === STOPPED || now === state) break;
      if (Atomics.compareExchange(this.control, STATE, now, state) === now) break;
    }
    this.wake(CONSUMER_WAKE);
    this.wake(PRODUCER_WAKE);
  }

  private wake(side: number): void {
    Atomics.add(this.control, side, 1);
    Atomics.notify(this.control, side);
  }

  private throwIfClosed(): void {
    const state = Atomics.load(this.control, STATE);
    if (state === ABORTED) throw new RingClosedError('aborted');
    if (state === STOPPED) throw new RingClosedError('stopped');
  }
}
