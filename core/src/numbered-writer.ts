/**
 * A writer whose writes to Redis carry its name and a number, 1, 2, … in the order it sends them
 * (over one connection, so Redis applies them in that order). A script that keeps the writer's last
 * number applied knows a write that ioredis sent again after reconnecting (Redis applied it, its
 * answer was lost with the connection) and applies it once: an attached client's input frames
 * (stdinAppend-2.lua), a worker's storage charges (chargeStorage-2.lua), an API process's reports
 * of a tenant's requests (requestRate-2.lua).
 */
import { randomUUID } from 'node:crypto';

export class NumberedWriter {
  readonly name = randomUUID();
  private sent = 0;

  /** The number of the write about to be sent. */
  next(): number {
    return ++this.sent;
  }
}
