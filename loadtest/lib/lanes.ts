/**
 * Runs `task` `total` times in all, `lanes` at once: each lane starts the next run when its last one
 * ends (a closed-loop load: N clients back to back). `lane` is the lane's index (0 … lanes-1).
 */
export async function inLanes(lanes: number, total: number, task: (lane: number) => Promise<void>): Promise<void> {
  let started = 0;
  await Promise.all(
    Array.from({ length: Math.min(lanes, total) }, async (_, lane) => {
      while (started < total) {
        started++;
        await task(lane);
      }
    }),
  );
}
