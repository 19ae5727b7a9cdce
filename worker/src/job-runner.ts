/**
 * One job on this worker, start to finish: claim it (queued → pulling), acquire the image, take a
 * run slot (waiting for one if needed; the job stays `pulling`), start it (→ running), stream its
 * output, record how it ended. A pull never holds a slot: a job stuck on a slow registry does not
 * keep ready jobs from running (the queue hands out slots + pull concurrency jobs at once). Every
 * failure is classified once into the job's `error.code`; the job record always reaches a final
 * status unless this process dies, in which case the janitor (here or on another worker) finishes
 * it as `worker_lost`.
 */
import { createHash, type KeyObject } from 'node:crypto';
import type { CancelStop } from '../../core/src/control-messages.ts';
import { replyCode, untilRedisTakes, type NotNowListener } from '../../core/src/redis-not-now.ts';
import type { StopSignal } from '../../core/src/launch-bounds.ts';
import { InvalidRequestError, isSbxError, WorkerOutdatedError } from '../../core/src/errors.ts';
import { parseImageReference } from '../../core/src/image-ref.ts';
import { limitsOverMaxima } from '../../core/src/limits-over-maxima.ts';
import type { LimitsPolicy } from '../../core/src/config.ts';
import { storedSpecProblems, type EgressUsage, type JobDocument, type JobPlacement, type JobSpec, type JobStatus } from '../../core/src/job-spec.ts';
import type { JobStore, StoredJob, StoredOutputFile } from '../../core/src/job-store.ts';
import { attemptOf, JobAttempts } from '../../core/src/job-attempts.ts';
import { settleLostJob, type LostJobRecovery } from '../../core/src/job-lifecycle.ts';
import type { Logger } from '../../core/src/logger.ts';
import type { WorkerMetrics } from '../../core/src/metrics.ts';
import type { WorkerDirectory } from '../../core/src/worker-directory.ts';
import { TenantCpuShares } from './tenant-cpu-shares.ts';
import { LaunchError, dropRestInKernel, launch, type EndInfo, type LaunchOptions, type LaunchSpec, type Launched, type OutputFile } from '../../native/index.ts';
import type { AcquiredImage, ImageStore } from './images/image-store.ts';
import type { TenantCredentials } from './images/registry/tenant-credentials.ts';
import { UnknownAuthFieldsError } from '../../core/src/secrets/registry-auth.ts';
import { buildLaunchSpec } from './launch/launch-plan.ts';
import { imageWorkdirError } from './launch/image-values.ts';
import { fromLaunchError } from './launch-errors.ts';
import { hostExhausted } from './host-exhaustion.ts';
import { LauncherCleanup } from './launcher-cleanup.ts';
import { RedisOutputSink } from './output/redis-sink.ts';
import { IDLE_END, startInteractive, withInteractive, type InteractiveInput, type InteractiveSession } from './interactive/session.ts';
import { outputIdleEnd, watchSilence } from './output/silence-watch.ts';
import { watchLiveUsage } from './live-usage.ts';
import { startEgressProxy, type EgressProxy } from './egress/egress-proxy.ts';
import { JobEgressRules, type JobEgressConfig } from './egress/job-egress-rules.ts';
import type { SlotPool } from './slots.ts';
import { receiptFor, type StreamDigest } from '../../core/src/receipts/job-receipt.ts';
import { sendTogether } from '../../core/src/redis-together.ts';
import { type TenantStorageBudget, TenantStorageBudgets } from '../../core/src/tenant-storage-budget.ts';
import { TenantImages } from '../../core/src/tenant-images.ts';

export interface RunnerDeps {
  workerId: string;
  /** Passed to every launch: the worker's cgroup subtree and the launcher's state directory. */
  launchOptions: LaunchOptions;
  store: JobStore;
  images: ImageStore;
  directory: WorkerDirectory;
  slots: SlotPool;
  logger: Logger;
  metrics: WorkerMetrics;
  /** Registry credentials per tenant (SBX_TENANT_DOCKER_CONFIG_DIR); a job's registryAuth wins. */
  tenantCredentials?: TenantCredentials;
  /** Wait before sweeping a job cgroup the launcher could not remove, and between retries (default 30 s). */
  cgroupSweepRetryMs?: number;
  /** SBX_RECEIPT_KEY_FILE: signs a receipt for each job that ran (core/src/receipts/job-receipt.ts). */
  receiptKey?: KeyObject;
  /** SBX_PULL_ALWAYS_FRESH_MS: jobs' `pull: "always"` within this long of the tag's last resolution use the cache (AcquireOptions.freshForMs). */
  pullAlwaysFreshMs?: number;
  /** SBX_LIVE_USAGE_MS: how often a running job's usage is kept with its document (0: never). */
  liveUsageMs?: number;
  /** SBX_JOB_EGRESS and its rules: null (or absent) refuses network "egress" jobs. */
  jobEgress?: JobEgressConfig | null;
  /**
   * The deployment's limits policy (SBX_MAX_*): a stored spec whose limits are above its maxima was
   * written by no API of this deployment (anyone who can write to Redis can queue a job) and is
   * refused. Absent: the launcher's own bounds only.
   */
  limits?: LimitsPolicy;
  /**
   * Queues a job again (SBX_LOST_JOB_REQUEUES): at shutdown, jobs whose command has not started
   * here go back to the queue for another worker, as a crashed worker's do. Without it they end
   * worker_lost.
   */
  recovery?: LostJobRecovery;
}

const PIPE_DRAIN_MS = 2000;

/** What a job that ran needs for its receipt (core/src/receipts/job-receipt.ts). */
interface SignedEnd {
  key: KeyObject;
  spec: JobSpec;
  written: { stdout: StreamDigest; stderr: StreamDigest };
  budget: TenantStorageBudget | null;
  /** Interactive jobs: what their session gave them (worker/src/interactive/session.ts). */
  input?: InteractiveInput;
}

/** A job this worker holds, so a cancel message can reach it. */
interface ActiveJob {
  cancelled: boolean;
  /** Killed because this worker is shutting down, not by the client. */
  shutdown: boolean;
  /** Past the point of no return: its start is being recorded (or was), its command may run. */
  started: boolean;
  abort: AbortController;
  launched: Launched | null;
  /** Its queue priority (1 + its tenant's active jobs): orders its wait for a pull permit and a run slot. */
  priority: number;
  /** The signal a cancel's stop sends when it names none: the job's stopSignal, else SIGTERM. */
  stopSignal: StopSignal;
}

export class JobRunner {
  private readonly active = new Map<string, ActiveJob>();
  /** Ids from before their claim is sent until they leave this worker's running set (janitor.ts settleOwnOrphans). */
  private readonly held = new Set<string>();
  /**
   * Cancel messages for held jobs not active yet: the claim's answer and a cancel sent just after it
   * come over different connections, so the cancel may be read first; run() applies it once active.
   */
  private readonly cancelsBeforeActive = new Set<string>();
  /** Records each job's start before its command executes (a lost job is requeued only before it). */
  private readonly attempts: JobAttempts;
  /** Logs and counts leftovers the launcher reports at each exit; sweeps a cgroup it could not remove. */
  readonly cleanup: LauncherCleanup;
  /** Each tenant's storage budget, shared by its jobs here (the room a charge left carries over). */
  private readonly budgets: TenantStorageBudgets;
  /** CPU weight per tenant among this host's running jobs (tenant-cpu-shares.ts). */
  private readonly cpuShares = new TenantCpuShares();
  /** The images each tenant's jobs acquired here, for its GET /v1/images. */
  private readonly tenantImages: TenantImages;

  constructor(private readonly deps: RunnerDeps) {
    this.attempts = new JobAttempts(deps.store.redis, deps.store.keys);
    this.budgets = new TenantStorageBudgets(deps.store.redis, deps.store.keys);
    this.tenantImages = new TenantImages(deps.store.redis, deps.store.keys, deps.store.ttlSeconds);
    this.cleanup = new LauncherCleanup({ launchOptions: deps.launchOptions, logger: deps.logger, metrics: deps.metrics, retryMs: deps.cgroupSweepRetryMs });
  }

  get heldIds(): ReadonlySet<string> {
    return this.held;
  }

  get runningIds(): string[] {
    return [...this.active.keys()];
  }

  /**
   * Cancels the job if it is ours: killed at once, or with `stop` (DELETE ?graceMs, docker stop)
   * its command gets the signal and the grace first, and its output files are collected.
   */
  cancel(id: string, stop?: CancelStop): boolean {
    const job = this.active.get(id);
    if (!job) {
      if (this.held.has(id)) this.cancelsBeforeActive.add(id);
      return false;
    }
    job.cancelled = true;
    job.abort.abort();
    if (stop && job.launched) job.launched.stop({ graceMs: stop.graceMs, signal: stop.signal ?? job.stopSignal });
    else job.launched?.kill();
    return true;
  }

  /**
   * Cancels the jobs held here that are marked for cancellation in Redis: the control channel's
   * message does not reach a subscriber that is reconnecting (a network blip, a Redis restart or
   * failover), and the job ran on to `succeeded` after DELETE answered 202. Read on every heartbeat
   * and when the subscriber is back. Returns how many it cancelled.
   */
  async recheckCancels(): Promise<number> {
    // Jobs held but not active yet read the mark with their claim (run()).
    const ids = [...this.active].filter(([, job]) => !job.cancelled).map(([id]) => id);
    if (ids.length === 0) return 0;
    let n = 0;
    for (const [id, stop] of await this.deps.store.cancelsRequested(ids)) {
      if (this.active.get(id)?.cancelled) continue; // told meanwhile
      this.deps.logger.info({ jobId: id }, 'job marked for cancellation in Redis: cancelled (its control message was not received)');
      this.cancel(id, stop ?? undefined);
      n++;
    }
    return n;
  }

  /**
   * At shutdown: the jobs whose command has not started here (pulling, or waiting for a slot) stop
   * now and go back to the queue (handBack). Before, they waited out the shutdown grace and ended
   * worker_lost, "submit it again", where a crash in the same phase queued them again.
   */
  handBackUnstarted(): number {
    let n = 0;
    for (const job of this.active.values()) {
      if (job.started || job.cancelled || job.shutdown) continue;
      job.shutdown = true;
      job.abort.abort(SHUTTING_DOWN);
      n++;
    }
    return n;
  }

  /** A job whose command never started here, back to the queue as a lost worker's would be (settleLostJob); false if it cannot go. */
  private async handBack(doc: JobDocument): Promise<boolean> {
    if (!this.deps.recovery || doc.status !== 'pulling') return false;
    const settled = await settleLostJob(this.deps.store, this.deps.recovery, doc).catch((err: Error) => {
      this.deps.logger.warn({ jobId: doc.id, err: err.message }, 'handing a job back to the queue at shutdown failed');
      return null;
    });
    if (settled) this.deps.logger.info({ jobId: doc.id, outcome: settled.outcome }, 'job not started here handed back at shutdown');
    return settled !== null;
  }

  /** Kill everything (worker shutdown); each run still records its end, as worker_lost. */
  stopAll(): void {
    this.cleanup.stop();
    this.killAll();
  }

  /** Kill every job this worker holds, each ending worker_lost (shutdown, or Redis lost: redis-watchdog.ts). */
  killAll(): void {
    for (const [id, job] of this.active) {
      job.shutdown = true;
      this.cancel(id);
    }
  }

  /**
   * `priority`: the job's queue priority, which also orders the wait for a run slot (slots.ts).
   * `placement`: how it came here (worker/src/placement), recorded in the document as it is claimed.
   * `claimSettled`: called once the claim is decided in Redis (ours, or someone else's / ended): the
   * queue entry may go only then, so that no crash or lost write leaves a queued job without an entry.
   * `record`: the job's record as the caller read it just before (store.get), instead of reading it here.
   */
  async run(id: string, priority = 0, placement?: JobPlacement, claimSettled?: () => void, record?: Promise<StoredJob | null>): Promise<void> {
    const { store, directory, workerId, logger } = this.deps;
    const stored = await (record ?? store.get(id));
    if (!stored || stored.status !== 'queued') return void claimSettled?.(); // expired, cancelled while queued, or taken
    const pickedAt = new Date();
    let doc: JobDocument = {
      ...stored.doc,
      ...(placement ? { placement } : {}),
      status: 'pulling',
      worker: workerId,
      timings: { ...stored.doc.timings, queueMs: pickedAt.getTime() - Date.parse(stored.doc.timings.createdAt) },
    };
    // Ours in the directory before the claim (same connection: a single Redis applies them in this
    // order), so a worker killed right after claiming is still found by the janitor (janitor.ts). On
    // a Cluster they go to different nodes and the claim may land alone (as when Redis loses the
    // entry's write): the queue audit finds such a job (unlisted-claims.ts). The cancel
    // flag is read right behind the claim, in the same write and round trip: a cancel flagged after
    // that read is published after it too, and reaches cancel() (cancelsBeforeActive until active).
    if (!this.active.has(id)) this.held.add(id);
    // A job that can run at once (its image in this host's cache, a slot free) is recorded as started
    // with its claim (JobStore.claim): its command is then not held back by a round trip of its own.
    // (A job that asks for pull "always" goes to the registry first, cached or not.)
    const cachedHere = placement?.imageCached === true && stored.spec.pull !== 'always';
    // A request this worker cannot apply as it is (a newer API's, or damaged), or a network "egress"
    // job on a worker that refuses them, is refused instead of its image acquired.
    const refused = this.refusal(stored.spec);
    const startsNow = cachedHere && this.deps.slots.available > 0;
    const [added, claiming, cancelRead] = sendTogether(store.redis, () => [directory.addRunning(workerId, id), store.claim(doc, startsNow), store.isCancelRequested(id)] as const);
    cancelRead.catch(() => {}); // awaited below once claimed; never an unhandled rejection meanwhile
    const job: ActiveJob = { cancelled: false, shutdown: false, started: false, abort: new AbortController(), launched: null, priority, stopSignal: stored.spec.stopSignal ?? 'SIGTERM' };
    // A cached image is looked up while the claim is in flight (given back if the claim fails); the
    // cancel flag read with the claim (a cancel that raced with it) applies once claimed.
    let acquiring = cachedHere && !refused ? this.acquire(stored.spec, job, stored.sealedAuth) : null;
    acquiring?.catch(() => {}); // awaited below, or released; never an unhandled rejection meanwhile
    const [, claimed] = await Promise.all([added, claiming]).catch((e: unknown) => {
      acquiring?.then((i) => i.release(), () => {});
      // Not run here, though the claim (or the entry) may have landed: no longer held, so this
      // worker's janitor settles the job if its entry is (or is put back: queue-audit.ts) in our
      // running set (janitor.ts settleOwnOrphans). Held, it was skipped as ours for ever.
      if (!this.active.has(id)) {
        this.held.delete(id);
        this.cancelsBeforeActive.delete(id);
      }
      throw e;
    });
    claimSettled?.();
    if (claimed !== 'ok') {
      job.abort.abort();
      acquiring?.then((i) => i.release(), () => {});
      return void (this.active.has(id) || (await directory.removeRunning(workerId, id).catch(() => {}), this.held.delete(id), this.cancelsBeforeActive.delete(id)));
    }
    this.deps.metrics.queueSeconds.observe(doc.timings.queueMs! / 1000);

    this.active.set(id, job);
    let slot: number | null = null;
    let teardown: Promise<void> | undefined;
    let image: AcquiredImage | null = null;
    let interactive: InteractiveSession | null = null;
    let proxy: EgressProxy | null = null;
    acquiring ??= refused ? Promise.reject(refused) : this.acquire(stored.spec, job, stored.sealedAuth);
    acquiring.catch(() => {}); // awaited below; never an unhandled rejection meanwhile
    try {
      const cancelledEarly = this.cancelsBeforeActive.delete(id);
      if ((await cancelRead) || cancelledEarly) this.cancel(id);
      image = await acquiring;
      const pulledAt = new Date();
      // Acquired for this tenant (its own access): listed to it from now on (not awaited: off the job's path).
      void this.tenantImages.note(stored.tenant, image.reference, image.digest).catch((err: Error) => logger.warn({ jobId: id, err: err.message }, 'recording the tenant\'s use of the image failed'));
      doc = { ...doc, imageDigest: image.digest, timings: { ...doc.timings, pullMs: pulledAt.getTime() - pickedAt.getTime() } };
      this.deps.metrics.pullSeconds.observe({ source: image.pulled ? 'registry' : 'cache' }, doc.timings.pullMs! / 1000);
      if (job.cancelled) return void (await this.finish(stored.tenant, doc, 'pulling', { status: 'cancelled' }));
      // A slot whose last job had this image if one is free (its pooled setups are made for that image).
      slot = await this.deps.slots.take(job.abort.signal, priority, image.digest); // rejects on cancel: ends `cancelled` below
      this.deps.metrics.slotsBusy.inc();
      if (job.cancelled) return void (await this.finish(stored.tenant, doc, 'pulling', { status: 'cancelled' }));

      // The point of no return, recorded before the command executes (job-attempts.ts): if this worker
      // is lost from here on the job ends worker_lost; before it, it may be queued again elsewhere.
      if (job.shutdown) throw SHUTTING_DOWN; // handed back (handBackUnstarted)
      job.started = true;
      const [built, stillOurs] = await Promise.all([buildLaunchSpec(stored.spec, image, slot), startsNow || this.attempts.markStarted(id, attemptOf(doc))]);
      if (!stillOurs) return void logger.warn({ jobId: id }, 'job was settled as lost before it started here (this worker looked dead): not started');
      const launchSpec = withInteractive(built, stored.spec);
      const imageRef = image.reference;
      // Stamped as the launch begins: the command may run before start() resolves, and well before
      // the egress proxy below serves it (finishedAt − startedAt must cover usage.wallMs).
      const startedAt = new Date();
      const launched = await this.start(id, launchSpec).catch((e: unknown) => {
        throw stored.spec.workdir ? e : imageWorkdirError(imageRef, e);
      });
      proxy = await this.serveEgress(stored.spec, launched);
      // Where to look on the host: its cgroups are <parent>/<id>, or on cgroup v2 the pooled setup's group it started in.
      logger.debug({ jobId: id, pid: launched.pid, cgroups: launched.cgroups }, 'job started');
      const perHour = stored.spec.tenantStoredBytesPerHour;
      const budget = perHour ? this.budgets.for(stored.tenant, perHour) : null;
      const sink = new RedisOutputSink(this.deps.store, id, attemptOf(doc), stored.spec.limits.outputBytes, { budget, tailBytes: stored.spec.limits.outputTailBytes ?? 0, digests: !!this.deps.receiptKey, onRefused: this.refusedWrite(id, 'output'), dropRest: dropRestInKernel });
      const drained = Promise.all([sink.attach('stdout', launched.stdout), sink.attach('stderr', launched.stderr)]);
      interactive = startInteractive(store, stored.spec, launched, sink, logger);
      const silence = watchSilence(() => sink.lastOutputAt, stored.spec.limits.outputIdleTimeoutMs, () => launched.stop());
      if (silence) void launched.exited.then(() => silence.stop());
      watchLiveUsage(store, id, launched, this.deps.liveUsageMs ?? 0, logger);
      job.launched = launched;
      this.cpuShares.add(stored.tenant, launched);
      const unweigh = () => this.cpuShares.remove(stored.tenant, launched);
      launched.ended.then(unweigh, unweigh);
      if (job.cancelled) launched.kill();
      doc = { ...doc, status: 'running', timings: { ...doc.timings, startedAt: startedAt.toISOString(), startMs: startedAt.getTime() - pulledAt.getTime() } };
      this.deps.metrics.startSeconds.observe((startedAt.getTime() - pulledAt.getTime()) / 1000);
      // `running` is recorded while the command runs; its output and its end follow on the same
      // connection without waiting for the answer (Redis applies them in order; the output only while
      // the job is running here: appendOutput-2.lua), so a short job's end is not held back by a round
      // trip. A job finished elsewhere meanwhile (e.g. declared lost) is killed when the answer comes.
      // Refused for now (Redis full, loading: redis-not-now.ts), it is sent again until taken; the
      // job runs on meanwhile, its output held back until this has landed (sink.open).
      const moving = untilRedisTakes(() => store.transition(doc, ['pulling'], 'status'), { onRefused: this.refusedWrite(id, 'running') });
      sink.open(moving);
      moving.then((m) => m === 'ok' || launched.kill(), () => launched.kill());
      // The outcome is known before the launcher removes the job's cgroups: record it without waiting
      // for that; the slot is given back only once the teardown is done (finally, below).
      teardown = launched.exited.then((e) => this.cleanup.report(id, e));
      const exit = { ...(await launched.ended), outputTruncated: false };
      // Every process of the job is gone or being killed by now (pid 1 got SIGKILL with the outcome), so
      // the pipes reach EOF within moments; never wait on them forever.
      const drainTimer = setTimeout(() => (launched.stdout.destroy(), launched.stderr.destroy(), sink.stopDrops()), PIPE_DRAIN_MS);
      await drained;
      await interactive?.stop();
      clearTimeout(drainTimer);
      await sink.flush();
      exit.outputTruncated = sink.truncated;
      if (sink.budgetUsedUp) logger.warn({ jobId: id, tenant: stored.tenant, bytesPerHour: perHour }, 'the tenant\'s storage budget for this hour is used up: the rest of this job\'s output was dropped');
      this.recordExitMetrics(exit, sink);
      const ended = job.shutdown ? { status: 'error' as const, error: SHUT_DOWN }
        : interactive?.idledOut ? IDLE_END
        : silence?.silencedOut ? outputIdleEnd(stored.spec.limits.outputIdleTimeoutMs!)
        : outcome(exit);
      // How much the cap left out (not given when the storage budget cut the output: that is counted in characters stored, not bytes written).
      const dropped = exit.outputTruncated && !sink.budgetUsedUp ? { outputDroppedBytes: sink.droppedBytes } : {};
      if (sink.firstOutputAt !== null) doc = { ...doc, timings: { ...doc.timings, firstOutputMs: Math.max(0, sink.firstOutputAt - startedAt.getTime()) } };
      const collected = stored.spec.outputFiles?.length && exit.outputFiles ? await this.keepOutputFiles(id, exit.outputFiles, budget) : {};
      if (proxy) doc = { ...doc, egress: this.countEgress(await proxy.close()) };
      const written = sink.digests();
      const receipt = written && this.deps.receiptKey ? { key: this.deps.receiptKey, spec: stored.spec, written, budget, ...(interactive ? { input: interactive.input() } : {}) } : undefined;
      await this.finish(stored.tenant, doc, 'running', { ...ended, exitCode: exit.exitCode, signal: exit.signal, usage: { ...exit.usage, oomKilled: exit.oomKilled, pidsLimitHit: exit.pidsLimitHit }, outputTruncated: exit.outputTruncated, ...dropped, ...collected }, receipt);
    } catch (e) {
      if (job.shutdown && !job.started && !job.cancelled && (await this.handBack(doc))) return;
      const error = classify(e);
      if (error.code === 'internal' && !job.shutdown) logger.error({ err: e, jobId: id }, 'job failed on an internal error');
      else if (error.code === 'worker_outdated' || error.code === 'host_exhausted') logger.warn({ jobId: id, code: error.code }, error.message); // for the operator: the deploy's order, the host's limits
      else logger.info({ jobId: id, code: error.code }, error.message);
      const ended = job.shutdown ? { status: 'error' as const, error: SHUT_DOWN } : job.cancelled ? { status: 'cancelled' as const } : { status: 'error' as const, error };
      await this.finish(stored.tenant, doc, doc.status, ended);
    } finally {
      await proxy?.close();
      await teardown;
      image?.release();
      if (slot !== null) {
        this.deps.slots.give(slot);
        this.deps.metrics.slotsBusy.dec();
      }
      await interactive?.stop().catch(() => {});
      this.active.delete(id);
      await directory.removeRunning(workerId, id).catch(() => {});
      this.held.delete(id);
      this.cancelsBeforeActive.delete(id);
    }
  }

  /**
   * Logs a write of job `id` that Redis refuses for now (sent again until taken): the first refusal,
   * then one in 20 (every ~40 s), so that a long outage is visible without a line every 2 s.
   */
  private refusedWrite(id: string, what: 'running' | 'output' | 'outputFiles' | 'end'): NotNowListener {
    return (err, tries) => {
      if (tries === 1 || tries % 20 === 0) {
        this.deps.logger.warn({ jobId: id, write: what, tries, reply: replyCode(err), err: err.message }, `Redis refuses the job's ${what} for now (full under noeviction, loading, …): sent again until it takes it`);
      }
    };
  }

  /** Why this worker will not run the job whatever its image, or null. */
  private refusal(spec: JobSpec): Error | null {
    const { unknown, invalid } = storedSpecProblems(spec);
    if (unknown.length) return new WorkerOutdatedError(this.deps.workerId, unknown);
    if (invalid.length) return new Error(`the job's stored request does not match what this worker reads: ${invalid.join('; ')}`);
    const over = this.deps.limits ? limitsOverMaxima(spec.limits, this.deps.limits) : [];
    if (over.length) {
      const details = over.map((o) => ({ path: `limits.${o.name}`, message: `${o.value} is above this worker's maximum ${o.max} (${o.variable})` }));
      this.deps.logger.warn({ jobId: spec.id, tenant: spec.tenant, over: details }, 'refusing a queued job whose limits no API of this deployment accepts (set SBX_MAX_* alike on the API and the workers; otherwise something other than the API wrote it to Redis)');
      return new InvalidRequestError(`the job's limits.${over[0]!.name} (${over[0]!.value}) is above this worker's maximum (${over[0]!.max}, ${over[0]!.variable}); nothing of it ran`, details);
    }
    if (spec.network === 'egress' && !this.deps.jobEgress) return new InvalidRequestError('network "egress" is turned off on this worker (SBX_JOB_EGRESS=false)');
    return null;
  }

  /**
   * The files the job's outputFiles collected: described in its document, their bytes kept with its
   * state (GET /v1/jobs/{id}/files) before its end is recorded, charged to the tenant's storage
   * budget; when that is used up they are listed without their bytes (outputFilesDropped).
   */
  private async keepOutputFiles(id: string, files: OutputFile[], budget: TenantStorageBudget | null): Promise<Pick<JobDocument, 'outputFiles' | 'outputFilesDropped'>> {
    const stored: StoredOutputFile[] = files.map((f) => ({
      path: f.path, bytes: f.size, keptBytes: f.data.length, truncated: f.truncated, sha256: createHash('sha256').update(f.data).digest('hex'),
      ...(f.skipped ? { skipped: f.skipped } : {}), content: f.data.toString('base64'),
    }));
    const outputFiles = stored.map(({ content: _, ...info }) => info);
    const json = JSON.stringify(stored); // serialized once: charged, then stored
    const bytes = Buffer.byteLength(json) + Buffer.byteLength(JSON.stringify(outputFiles));
    if (budget && (await budget.charge(bytes)).granted < bytes) return { outputFiles, outputFilesDropped: true };
    await untilRedisTakes(() => this.deps.store.recordOutputFiles(id, stored, json), { onRefused: this.refusedWrite(id, 'outputFiles') });
    return { outputFiles };
  }

  /** launch(), its failures as SbxErrors (launch-errors.ts); a failed start's cleanup is reported too. */
  private async start(id: string, spec: LaunchSpec): Promise<Launched> {
    try {
      return await launch(spec, this.deps.launchOptions);
    } catch (e) {
      if (e instanceof LaunchError && e.exit) this.cleanup.report(id, e.exit);
      throw fromLaunchError(e, spec.cwd);
    }
  }

  /**
   * A network "egress" job's proxy, on the listener the launcher made in its namespace
   * (worker/src/egress); closed when the job ends. A proxy that cannot start ends the job.
   */
  private async serveEgress(spec: JobSpec, launched: Launched): Promise<EgressProxy | null> {
    if (launched.listenFd === undefined) return null;
    try {
      return await startEgressProxy({ fd: launched.listenFd }, new JobEgressRules(this.deps.jobEgress!, spec.egressHosts), { jobId: spec.id, logger: this.deps.logger });
    } catch (e) {
      launched.kill();
      throw e;
    }
  }

  /** `sealedAuth`: the job's sealed registryAuth as store.get() read it (no second read). */
  private async acquire(spec: JobSpec, job: ActiveJob, sealedAuth?: string | null): Promise<AcquiredImage> {
    try {
      // The request's registryAuth is sealed apart from the spec (refusal() does not see it): a field
      // of it this worker does not know ends the job worker_outdated too, before anything is pulled.
      const own = await this.deps.store.registryAuth(spec.id, sealedAuth).catch((e: unknown) => {
        throw e instanceof UnknownAuthFieldsError ? new WorkerOutdatedError(this.deps.workerId, e.unknown) : e;
      });
      const credentials = own ?? spec.registryAuth ?? (await this.deps.tenantCredentials?.lookup(spec.tenant, parseImageReference(spec.image).registry, spec.image));
      const image = await this.deps.images.acquire(spec.image, {
        signal: job.abort.signal,
        requester: { tenant: spec.tenant, priority: job.priority },
        ...(spec.pull === 'always' ? { policy: 'always' as const, freshForMs: this.deps.pullAlwaysFreshMs ?? 0 } : {}),
        ...(credentials ? { credentials } : {}),
      });
      this.deps.metrics.pulls.inc({ result: image.pulled ? 'pulled' : 'hit' });
      (image.pulled ? this.deps.metrics.cacheMisses : this.deps.metrics.cacheHits).inc();
      return image;
    } catch (e) {
      this.deps.metrics.pulls.inc({ result: 'error' });
      this.deps.metrics.cacheMisses.inc();
      throw e;
    }
  }

  /** A network "egress" job's proxy counts, added to the worker's metrics. */
  private countEgress(e: EgressUsage): EgressUsage {
    const m = this.deps.metrics;
    m.egressConnections.inc(e.connections);
    m.egressRefused.inc(e.refused);
    m.egressBytes.inc({ direction: 'sent' }, e.bytesSent);
    m.egressBytes.inc({ direction: 'received' }, e.bytesReceived);
    return e;
  }

  /** Run time, the limits the job hit, the output it produced. */
  private recordExitMetrics(exit: EndInfo & { outputTruncated: boolean }, sink: RedisOutputSink): void {
    const m = this.deps.metrics;
    m.jobSeconds.observe(exit.usage.wallMs / 1000);
    if (exit.oomKilled) m.limitHits.inc({ limit: 'memory' });
    if (exit.pidsLimitHit) m.limitHits.inc({ limit: 'pids' });
    if (exit.reason === 'timeout') m.limitHits.inc({ limit: 'timeout' });
    if (exit.outputTruncated) m.limitHits.inc({ limit: 'output' });
    const [kept, dropped, inKernel] = [sink.keptBytes, sink.droppedBytes, sink.droppedInKernel];
    for (const stream of ['stdout', 'stderr'] as const) {
      m.outputBytes.inc({ stream }, kept[stream]);
      m.outputDropped.inc({ stream, how: 'kernel' }, inKernel[stream]);
      m.outputDropped.inc({ stream, how: 'read' }, dropped[stream] - inKernel[stream]);
    }
  }

  /**
   * `tenant`: the job's (from its record), so the store releases its quota without reading it again.
   * `receipt`: for a job that ran, its receipt signed over the final document (SBX_RECEIPT_KEY_FILE),
   * charged to the tenant's storage budget as Redis holds it: twice, in the record and its exit event.
   */
  private async finish(tenant: string, doc: JobDocument, from: JobStatus, patch: Partial<JobDocument> & { status: JobStatus }, receipt?: SignedEnd): Promise<void> {
    const final: JobDocument = { ...doc, ...patch, timings: { ...doc.timings, finishedAt: new Date().toISOString() } };
    let charged: Promise<unknown> = Promise.resolve();
    if (receipt) {
      final.receipt = receiptFor(final, receipt.spec, receipt.written, receipt.key, receipt.input);
      if (receipt.budget) charged = receipt.budget.charge(2 * Buffer.byteLength(JSON.stringify(final.receipt))).catch(() => {});
    }
    // From `running`, `pulling` too (same attempt): Redis may have lost the move to running (a restart).
    // Refused for now (Redis full, loading: redis-not-now.ts), the end is sent again until Redis takes
    // it. Before, an OOM reply here left the job `running` for its record's whole TTL.
    const ending = untilRedisTakes(() => this.deps.store.transition(final, from === 'running' ? ['running', 'pulling'] : [from], 'exit', tenant), { onRefused: this.refusedWrite(doc.id, 'end') });
    const [result] = await Promise.all([ending, charged]); // counted by the store's finish listener (main.ts)
    // '': no record at all. Expired (a run longer than its record's life) or evicted (a Redis whose
    // maxmemory-policy is not noeviction: refused at start, core/src/redis-eviction.ts, but a server
    // may be switched later); before, logged as "finished elsewhere first" with found "".
    if (result === '') this.deps.logger.error({ jobId: doc.id, status: final.status }, 'the job\'s record is gone from Redis (expired, or evicted: Redis must run with maxmemory-policy noeviction); its end could not be recorded and its outcome is lost');
    else if (result !== 'ok') this.deps.logger.warn({ jobId: doc.id, found: result }, 'job was finished elsewhere first');
  }
}

const SHUT_DOWN = { code: 'worker_lost', message: 'the worker shut down while this job ran; submit it again' };
/** Why a job not started here stops at shutdown (it goes back to the queue). */
const SHUTTING_DOWN = new Error('the worker is shutting down');

/**
 * The status of a job whose command ran, from how it ended. `cancelled` only when the cancel ended
 * it (exit reason `killed`): a cancel that came as the command exited by itself changes nothing.
 */
function outcome(exit: EndInfo): Pick<JobDocument, 'status' | 'exitCode' | 'signal'> {
  const base = { exitCode: exit.exitCode, signal: exit.signal };
  if (exit.reason === 'killed') return { ...base, status: 'cancelled' };
  if (exit.reason === 'timeout') return { ...base, status: 'timeout' };
  if (exit.reason === 'oom' || (exit.oomKilled && exit.signal === 'SIGKILL')) return { ...base, status: 'oom' };
  if (exit.exitCode === 0 && !exit.signal) return { ...base, status: 'succeeded' };
  return { ...base, status: 'failed' };
}

/** SbxError codes a job document shows as its error.code (api.md); any other failure is `internal`. */
const JOB_ERROR_CODES = new Set(['image_not_found', 'image_pull_failed', 'registry_unauthorized', 'invalid_image', 'command_not_found', 'invalid_request', 'egress_refused', 'worker_outdated', 'host_exhausted']);
const INTERNAL = { code: 'internal', message: 'the worker hit an internal error running this job; it has been logged' };

function classify(thrown: unknown): { code: string; message: string } {
  const e = hostExhausted(thrown) ?? thrown; // EMFILE from any file the job's run opens here (host-exhaustion.ts)
  return isSbxError(e) && JOB_ERROR_CODES.has(e.code) ? { code: e.code, message: e.message } : INTERNAL;
}
