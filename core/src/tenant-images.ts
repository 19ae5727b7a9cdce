/**
 * The images each tenant's jobs used, as image and digest, for the tenant's GET /v1/images (P43).
 * Written by the worker once a tenant's job has acquired its image (pulled with the job's own
 * access, or handed from the cache to a job allowed to have it), never at submission: a job
 * refused `registry_unauthorized` named another tenant's private image and had it listed, digest,
 * size and workers, without ever being given it.
 */
import { defineScripts, luaScript } from './redis-scripts.ts';
import type { RedisClient } from './redis.ts';
import type { RedisKeys } from './redis-keys.ts';

const SCRIPTS = { sbxNoteTenantImage: luaScript('noteTenantImage-1') };
interface ScriptedClient {
  sbxNoteTenantImage(images: string, member: string, ttlSeconds: number): Promise<number>;
}

/** How a tenant's use of an image is kept: the image's canonical reference and the digest its job got. */
export function tenantImageMember(image: string, digest: string): string {
  return `${image}@${digest}`;
}

/** At most this many (tenant, image) pairs remembered as written lately by this process. */
const WRITTEN_MEMO = 10_000;

export class TenantImages {
  private readonly scripted: ScriptedClient;
  /** When this process last wrote each tenant's use of each image: written again only after a while. */
  private readonly written = new Map<string, number>();

  /** `ttlSeconds`: how long a use is remembered (as long as a finished job: SBX_JOB_TTL_SECONDS). */
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    private readonly ttlSeconds: number,
  ) {
    this.scripted = defineScripts<ScriptedClient>(redis, SCRIPTS);
  }

  /**
   * A job of `tenant` acquired `image` (canonical) at `digest`. One command, and none again for the
   * same pair from this process for a tenth of the TTL (at most 10 min): the hot path of jobs on a
   * cached image sends nothing more.
   */
  async note(tenant: string, image: string, digest: string, now = Date.now()): Promise<void> {
    const member = tenantImageMember(image, digest);
    const memo = `${tenant}\u0000${member}`;
    const last = this.written.get(memo);
    if (last !== undefined && now - last < Math.min(600_000, this.ttlSeconds * 100)) return;
    this.written.delete(memo);
    this.written.set(memo, now);
    for (const oldest of this.written.keys()) {
      if (this.written.size <= WRITTEN_MEMO) break;
      this.written.delete(oldest);
    }
    try {
      await this.scripted.sbxNoteTenantImage(this.keys.tenantImages(tenant), member, this.ttlSeconds);
    } catch (e) {
      this.written.delete(memo); // written next time
      throw e;
    }
  }

  /**
   * The images (tenantImageMember() keys) the tenant's jobs acquired within the TTL: its own set, at
   * most 10,000 (noteTenantImage-1.lua). Before, the fleet's images were looked up in it, one ZMSCORE
   * member each: a tenant's GET /v1/images cost as much as the fleet's caches were large.
   */
  async used(tenant: string): Promise<Set<string>> {
    return new Set(await this.redis.zrangebyscore(this.keys.tenantImages(tenant), Date.now() - this.ttlSeconds * 1000, '+inf'));
  }
}
