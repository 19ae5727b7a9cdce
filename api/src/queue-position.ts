/**
 * A job document as read: `queuePosition` (1 = next to be taken) while it is queued, null
 * otherwise, computed on read from BullMQ's prioritized set (core/src/job-queue.ts), never stored.
 */
import { requeueEntryId } from '../../core/src/job-queue.ts';
import type { JobDocument } from '../../core/src/job-spec.ts';
import type { AppDeps } from './deps.ts';

export async function withQueuePositions(deps: Pick<AppDeps, 'queue'>, docs: JobDocument[]): Promise<JobDocument[]> {
  const queued = docs.filter((d) => d.status === 'queued');
  const positions = await deps.queue.positions(queued.map((d) => requeueEntryId(d.id, d.attempts ?? 1))); // a requeued job's entry: its attempt's
  const byId = new Map(queued.map((d, i) => [d.id, positions[i] ?? null]));
  return docs.map((d) => ({ ...d, queuePosition: byId.get(d.id) ?? null }));
}

export async function withQueuePosition(deps: Pick<AppDeps, 'queue'>, doc: JobDocument): Promise<JobDocument> {
  return (await withQueuePositions(deps, [doc]))[0]!;
}
