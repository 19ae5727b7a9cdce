/**
 * AbortSignal.any() for signals that outlive the one made from them. On Node 20 (engines: >= 20)
 * AbortSignal.any() adds a WeakRef to the new signal into every source signal's set of dependants and
 * never takes it out: the new signal is collected, its WeakRef stays. A process-wide signal (the API's
 * shutdown, the image store's closing) given to AbortSignal.any() once per request or pull therefore
 * held one WeakRef per request for the life of the process (the leak soak: +2,143 WeakRefs on the
 * API's heap over 3,000 jobs, +960 on the worker's; loadtest/soak-leaks.ts). A composite signal
 * passed on to AbortSignal.any() is flattened to its sources, so every later AbortSignal.any() made
 * from one of those counted against the long-lived source too.
 *
 * linkedSignal() instead listens on each source and `release()` removes those listeners: once
 * released, the sources keep nothing of it. Call release() when the work the signal guards is over
 * (a finally); an abort before then aborts the signal with the first source's reason, as
 * AbortSignal.any() does.
 */
import { setMaxListeners } from 'node:events';

export interface LinkedSignal {
  readonly signal: AbortSignal;
  /** Stops listening on the sources (idempotent); the signal keeps its state. */
  release(): void;
}

export function linkedSignal(sources: ReadonlyArray<AbortSignal>): LinkedSignal {
  const controller = new AbortController();
  const already = sources.find((s) => s.aborted);
  if (already) {
    controller.abort(already.reason);
    return { signal: controller.signal, release: () => {} };
  }
  const onAbort = (e: Event): void => {
    release();
    controller.abort((e.target as AbortSignal).reason);
  };
  const release = (): void => {
    for (const s of sources) s.removeEventListener('abort', onAbort);
  };
  for (const s of sources) {
    // A long-lived source has one listener per linked signal in flight (each concurrent ?wait, pull,
    // wait()), released each: Node's leak warning at 11 ("MaxListenersExceededWarning … 11 abort
    // listeners added to [AbortSignal]") would be printed to stderr of any busy process for nothing.
    setMaxListeners(0, s);
    s.addEventListener('abort', onAbort, { once: true });
  }
  return { signal: controller.signal, release };
}

/**
 * `work` with one signal that aborts when any of `sources` does (absent ones left out), released when
 * `work` settles; a single source is passed as it is, none as undefined.
 */
export function withLinkedSignal<T>(sources: readonly [AbortSignal, ...Array<AbortSignal | undefined>], work: (signal: AbortSignal) => Promise<T>): Promise<T>;
export function withLinkedSignal<T>(sources: ReadonlyArray<AbortSignal | undefined>, work: (signal: AbortSignal | undefined) => Promise<T>): Promise<T>;
export async function withLinkedSignal<T>(sources: ReadonlyArray<AbortSignal | undefined>, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const present = sources.filter((s): s is AbortSignal => s !== undefined);
  // None: undefined, which only the second signature's `work` is given (its first source may be absent).
  if (present.length <= 1) return work(present[0] as AbortSignal);
  const linked = linkedSignal(present);
  try {
    return await work(linked.signal);
  } finally {
    linked.release();
  }
}
