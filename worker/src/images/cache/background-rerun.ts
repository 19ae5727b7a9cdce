/**
 * Work run in the background one at a time: asked while it runs, it runs once more after (never two
 * at once, never a request lost). `running` is the run in progress, for a close() to wait for.
 */
export class BackgroundRerun {
  private current: Promise<void> | null = null;
  private again = false;

  /** `stopped`: no run starts, and a run in progress does not repeat, once it says true. */
  constructor(private readonly work: () => Promise<void>, private readonly stopped: () => boolean) {}

  get running(): Promise<void> | null {
    return this.current;
  }

  soon(): void {
    if (this.stopped()) return;
    if (this.current) {
      this.again = true;
      return;
    }
    this.current = (async () => {
      do {
        this.again = false;
        await this.work();
      } while (this.again && !this.stopped());
    })().finally(() => (this.current = null));
  }
}
