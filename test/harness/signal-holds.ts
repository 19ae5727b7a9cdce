/**
 * What a long-lived AbortSignal holds on behalf of signals made from it: its 'abort' listeners and,
 * on Node's AbortSignal, the set of dependants AbortSignal.any() adds a WeakRef to (an internal
 * symbol, "kDependantSignals"; Node 20 never empties it: client/src/linked-signal.ts). A test that
 * runs N requests or pulls asserts this is back where it was.
 */
import { getEventListeners } from 'node:events';

export function signalHolds(signal: AbortSignal): number {
  const dependants = Object.getOwnPropertySymbols(signal).find((s) => s.description === 'kDependantSignals');
  const set = dependants ? (signal as unknown as Record<symbol, Set<unknown> | undefined>)[dependants] : undefined;
  return getEventListeners(signal, 'abort').length + (set?.size ?? 0);
}
