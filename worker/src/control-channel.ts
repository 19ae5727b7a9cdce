/**
 * Commands the API broadcasts to every worker over Redis pub/sub: cancel a job, pre-pull or evict
 * an image. A worker acts only on what concerns it; a malformed message is logged and dropped.
 */
import { z } from 'zod';
import type { Logger } from '../../core/src/logger.ts';
import type { RedisClient } from '../../core/src/redis.ts';

export const ControlMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('cancel'), id: z.string() }),
  z.object({ type: z.literal('pull'), image: z.string() }),
  z.object({ type: z.literal('evict'), digest: z.string() }),
]);
export type ControlMessage = z.infer<typeof ControlMessage>;

export async function listenForControl(sub: RedisClient, channel: string, logger: Logger, handle: (m: ControlMessage) => void): Promise<void> {
  sub.on('message', (ch: string, raw: string) => {
    if (ch !== channel) return;
    let parsed;
    try {
      parsed = ControlMessage.safeParse(JSON.parse(raw));
    } catch {
      parsed = null;
    }
    if (!parsed?.success) return void logger.warn({ raw: raw.slice(0, 200) }, 'ignoring malformed control message');
    handle(parsed.data);
  });
  await sub.subscribe(channel);
}
