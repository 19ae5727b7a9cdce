/**
 * A queued job's estimated wait, for its `queue` events: from how fast its position has moved since
 * its event stream began looking (no Redis beyond the position reads the stream makes anyway). Until
 * the position has moved there is no estimate (null); jobs placed ahead of it (higher priority) move
 * the baseline back to where it stands now.
 */
export class QueueEta {
  private baseline: { at: number; position: number } | null = null;

  /** The estimate, in ms, for the job at `position` at time `now`; null while there is none. */
  estimate(position: number, now = Date.now()): number | null {
    if (this.baseline === null || position > this.baseline.position) {
      this.baseline = { at: now, position };
      return null;
    }
    const moved = this.baseline.position - position;
    const elapsed = now - this.baseline.at;
    if (moved <= 0 || elapsed <= 0) return null;
    return Math.round((position * elapsed) / moved);
  }
}
