/**
 * Image stores for tests: each in its own temporary root, loopback registries allowed (the test
 * registries listen there; egress tests pass their own `egressAllow`), quick retries, and all of
 * them closed and removed by one cleanup() in the test file's after().
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImageStore, type ImageStoreOptions } from '../../worker/src/images/image-store.ts';
import { LOOPBACK_EGRESS } from './egress.ts';

/** Retries short enough that a test about failures does not wait. */
export const QUICK_RETRY = { attempts: 2, baseDelayMs: 10, maxDelayMs: 20, deadlineMs: 2_000 };

export class TempImageStores {
  private readonly stores: ImageStore[] = [];
  private readonly roots: string[] = [];

  /** `prefix` names the temporary roots (/tmp/<prefix>XXXXXX), so a leftover says which test made it. */
  constructor(private readonly prefix = 'sbx-images-') {}

  /** A new temporary root (removed by cleanup()), e.g. to share one cache between two stores. */
  async root(): Promise<string> {
    const root = await mkdtemp(join(tmpdir(), this.prefix));
    this.roots.push(root);
    return root;
  }

  /** A store on `opts.root` or a new temporary root; closed by cleanup(). */
  async make(opts: Partial<ImageStoreOptions> = {}): Promise<ImageStore> {
    const root = opts.root ?? (await this.root());
    const store = new ImageStore({ egressAllow: LOOPBACK_EGRESS, retry: QUICK_RETRY, ...opts, root });
    this.stores.push(store);
    return store;
  }

  async cleanup(): Promise<void> {
    for (const s of this.stores.splice(0)) await s.close();
    for (const r of this.roots.splice(0)) await rm(r, { recursive: true, force: true });
  }
}
