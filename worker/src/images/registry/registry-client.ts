/**
 * A client for one registry over the OCI distribution API, on a shared undici dispatcher (connection
 * reuse across pulls). It answers auth challenges, follows blob redirects (never sending our
 * Authorization, nor this registry's client certificate, to another origin), retries
 * 429/5xx/connection failures with backoff within a deadline (TLS failures are final), caps manifest
 * sizes and verifies every digest. Failures become typed SbxErrors.
 */
import { isIP } from 'node:net';
import type { Readable } from 'node:stream';
import { request, type Dispatcher } from 'undici';
import { ImageNotFoundError, ImagePullFailedError, InvalidImageError, RegistryUnauthorizedError, SbxError } from '../../../../core/src/errors.ts';
import { DigestVerifier, sha256Digest, type ExpectedBlob } from '../layers/digest-verifier.ts';
import { MANIFEST_ACCEPT } from './media-types.ts';
import { RegistryAuth, type RegistryCredentials } from './registry-auth.ts';
import { registryText } from './registry-text.ts';
import { describeTlsFailure } from './tls-errors.ts';
import { DEFAULT_STALL_RULE, TransferWatch, type StallRule } from './transfer-watch.ts';

export interface RetryPolicy {
  /** Attempts per request, the first included. */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** No new attempt starts after this many ms from the first one. */
  deadlineMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 4, baseDelayMs: 250, maxDelayMs: 4_000, deadlineMs: 60_000 };

export interface RegistryClientOptions {
  /** As in the image reference: 'docker.io', '127.0.0.1:5000', '[::1]:5000'. */
  registry: string;
  /** For this registry's own origin (its certs.d Agent, if it has an entry). */
  dispatcher: Dispatcher;
  /**
   * For any other origin (blob redirects, token servers); default `dispatcher`. The image store
   * passes that host's own certs.d Agent or the shared dispatcher, so that this registry's CAs and
   * client certificate are used for this registry only.
   */
  otherOrigins?: (url: URL) => Dispatcher;
  /** Always https, even for loopback and insecure registries (the registry has a certs.d entry). */
  https?: boolean;
  /** Hosts reached over plain http (unless `https`); loopback hosts always are. */
  insecureRegistries?: readonly string[];
  credentials?: RegistryCredentials;
  retry?: RetryPolicy;
  /** Idle time allowed between response bytes / before headers. */
  timeoutMs?: number;
  /** A transfer that receives fewer bytes than this over the window fails, final (default 64 KiB in 30 s). */
  stall?: StallRule;
  /**
   * Mirrors (pull-through caches serving the same repositories), tried in order before this
   * registry for manifests and blobs; any failure of a mirror falls through to the next and finally
   * to the registry itself. Digests are verified whatever host answered.
   */
  mirrors?: readonly RegistryClient[];
}

/** One attempt, no backoff: a mirror that fails is skipped, not waited for. */
export const MIRROR_RETRY: RetryPolicy = { attempts: 1, baseDelayMs: 0, maxDelayMs: 0, deadlineMs: 30_000 };

export interface FetchedManifest {
  bytes: Buffer;
  /** The Content-Type the registry sent. */
  contentType: string | undefined;
  /** sha256 of the bytes as received. */
  digest: string;
}

/** Who is pulling what, for error messages and auth scopes. */
export interface PullTarget {
  /** Canonical image reference, for messages. */
  image: string;
  repository: string;
  signal?: AbortSignal;
}

const MAX_REDIRECTS = 5;
const MAX_ERROR_BODY = 16 * 1024;
const MAX_TOKEN_BODY = 1024 * 1024;

export function isLoopbackRegistry(registry: string): boolean {
  const host = registry.startsWith('[') ? registry.slice(1, registry.indexOf(']')) : registry.replace(/:\d+$/, '');
  if (host === 'localhost' || host === '::1') return true;
  return isIP(host) === 4 && host.startsWith('127.');
}

/** Docker Hub's API lives on another host than its name. */
function apiHost(registry: string): string {
  return registry === 'docker.io' ? 'registry-1.docker.io' : registry;
}

/** The registry's own words for an error, bounded and sanitised (registry-text.ts): they reach the job's error. */
function registryMessage(body: string): string {
  try {
    const json = JSON.parse(body) as { errors?: Array<{ code?: unknown; message?: unknown }> };
    const first = json.errors?.[0];
    if (first) return registryText([first.code, first.message].filter(Boolean).map(String).join(': ')) || 'no details';
  } catch {
    // not JSON: use the text
  }
  return registryText(body) || 'no details';
}

function headerValue(headers: Dispatcher.ResponseData['headers'], name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

/** Drops a response body; undici reports the abort as an 'error' nobody else would listen to. */
function discard(body: Dispatcher.ResponseData['body']): void {
  body.on('error', () => {});
  body.destroy();
}

/** A response whose transfer a TransferWatch follows (stopped when the body closes). */
type WatchedResponse = Dispatcher.ResponseData & { watch: TransferWatch };

async function readCapped(body: Dispatcher.ResponseData['body'], maxBytes: number, tooBig: () => Error, watch?: TransferWatch): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body) {
    total += (chunk as Buffer).length;
    watch?.add((chunk as Buffer).length);
    if (total > maxBytes) {
      discard(body);
      throw tooBig();
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function retryAfterMs(headers: Dispatcher.ResponseData['headers']): number | undefined {
  const v = headerValue(headers, 'retry-after');
  if (v === undefined) return undefined;
  const seconds = Number(v);
  if (Number.isFinite(seconds)) return seconds * 1000;
  const date = Date.parse(v);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** A failure worth retrying, with the delay the server asked for, if any. */
class RetryableFailure extends ImagePullFailedError {
  constructor(
    image: string,
    detail: string,
    readonly retryAfter: number | undefined,
    cause?: unknown,
  ) {
    super(image, detail, { cause, retryable: true });
  }
}

export class RegistryClient {
  readonly registry: string;
  readonly baseUrl: string;
  /** `baseUrl` as URL.origin spells it ('https://host:443' → 'https://host'). */
  private readonly origin: string;
  private readonly dispatcher: Dispatcher;
  private readonly otherOrigins: (url: URL) => Dispatcher;
  private readonly auth: RegistryAuth;
  private readonly retry: RetryPolicy;
  private readonly timeoutMs: number;
  private readonly stall: StallRule;
  private readonly mirrors: readonly RegistryClient[];

  constructor(opts: RegistryClientOptions) {
    this.mirrors = opts.mirrors ?? [];
    this.registry = opts.registry;
    const insecure = !opts.https && (isLoopbackRegistry(opts.registry) || (opts.insecureRegistries ?? []).includes(opts.registry));
    this.baseUrl = `${insecure ? 'http' : 'https'}://${apiHost(opts.registry)}`;
    this.origin = new URL(this.baseUrl).origin;
    this.dispatcher = opts.dispatcher;
    this.otherOrigins = opts.otherOrigins ?? (() => opts.dispatcher);
    this.retry = opts.retry ?? DEFAULT_RETRY;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.stall = opts.stall ?? DEFAULT_STALL_RULE;
    this.auth = new RegistryAuth(
      opts.registry,
      opts.credentials,
      (url, headers, signal) => this.tokenRequest(url, headers, signal),
      (url, headers, body, signal) => this.tokenRequest(url, headers, signal, body),
    );
  }

  /** GET a manifest by tag or digest (mirrors first). Verifies the digest when `reference` is one. */
  async getManifest(target: PullTarget, reference: string, maxBytes: number): Promise<FetchedManifest> {
    for (const mirror of this.mirrors) {
      const got = await mirror.fetchManifest(target, reference, maxBytes).catch(() => null);
      if (got) return got;
    }
    return this.fetchManifest(target, reference, maxBytes);
  }

  private async fetchManifest(target: PullTarget, reference: string, maxBytes: number): Promise<FetchedManifest> {
    const url = new URL(`${this.baseUrl}/v2/${target.repository}/manifests/${reference}`);
    const notFound = () => new ImageNotFoundError(target.image);
    return this.withRetries(target, async () => {
      const res = await this.send(url, target, { accept: MANIFEST_ACCEPT }, notFound);
      const declared = Number(headerValue(res.headers, 'content-length') ?? '0');
      const tooBig = () => new InvalidImageError(target.image, `its manifest is larger than the ${maxBytes}-byte limit`);
      if (declared > maxBytes) {
        discard(res.body);
        throw tooBig();
      }
      const bytes = await this.readBody(target, res, maxBytes, tooBig);
      const digest = sha256Digest(bytes);
      if (reference.startsWith('sha256:') && digest !== reference) {
        throw new InvalidImageError(target.image, `manifest fetched by digest ${reference} has digest ${digest}`);
      }
      return { bytes, contentType: headerValue(res.headers, 'content-type'), digest };
    });
  }

  /** GET a small blob (a config) into memory, verified against its descriptor. */
  async getBlobBytes(target: PullTarget, blob: ExpectedBlob, maxBytes: number): Promise<Buffer> {
    if (blob.size > maxBytes) throw new InvalidImageError(target.image, `blob ${blob.digest} is ${blob.size} bytes, over the ${maxBytes}-byte limit`);
    return this.withRetries(target, async () => {
      const stream = await this.getBlob(target, blob);
      const chunks: Buffer[] = [];
      for await (const chunk of stream) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks);
    });
  }

  /**
   * GET a blob as a stream that fails if the bytes exceed the descriptor's size or do not hash to its
   * digest (the error comes at the end: consumers must not commit anything before the stream ends).
   * Transport failures mid-body surface as retryable ImagePullFailedError. One attempt: wrap the
   * whole download-and-use in withRetries() to retry.
   */
  async getBlob(target: PullTarget, blob: ExpectedBlob): Promise<Readable> {
    for (const mirror of this.mirrors) {
      const got = await mirror.fetchBlob(target, blob).catch(() => null);
      if (got) return got;
    }
    return this.fetchBlob(target, blob);
  }

  private async fetchBlob(target: PullTarget, blob: ExpectedBlob): Promise<Readable> {
    const url = new URL(`${this.baseUrl}/v2/${target.repository}/blobs/${blob.digest}`);
    const missing = (said: string) => new InvalidImageError(target.image, `its blob ${blob.digest} is missing from the registry (${this.registry} said ${said})`);
    const res = await this.send(url, target, {}, missing);
    const declared = headerValue(res.headers, 'content-length');
    if (declared !== undefined && Number(declared) > blob.size) {
      discard(res.body);
      throw new InvalidImageError(target.image, `registry announces ${declared} bytes for blob ${blob.digest}, its descriptor declares ${blob.size}`);
    }
    const verifier = new DigestVerifier(blob, (detail) => new InvalidImageError(target.image, detail));
    const { watch } = res;
    res.body.on('error', (e: Error) => verifier.destroy(watch.stalled ? watch.error : this.transportError(target, e)));
    verifier.on('close', () => discard(res.body));
    res.body.pipe(verifier);
    res.body.on('data', (chunk: Buffer) => watch.add(chunk.length)); // beside the pipe: flow and pauses stay the pipe's
    watch.holdsBackWhen(() => verifier.writableNeedDrain); // unpacking is behind, not the registry
    return verifier;
  }

  /** Runs `attempt` until it succeeds, fails for good, or the retry budget is spent. */
  async withRetries<T>(target: PullTarget, attempt: () => Promise<T>): Promise<T> {
    const started = Date.now();
    for (let n = 1; ; n++) {
      try {
        return await attempt();
      } catch (e) {
        const retryable = e instanceof SbxError && e.retryable && !(target.signal?.aborted ?? false);
        const backoff = Math.min(this.retry.maxDelayMs, this.retry.baseDelayMs * 2 ** (n - 1)) * (0.75 + Math.random() * 0.5);
        const delay = Math.min(this.retry.maxDelayMs, e instanceof RetryableFailure && e.retryAfter !== undefined ? e.retryAfter : backoff);
        if (!retryable || n >= this.retry.attempts || Date.now() - started + delay > this.retry.deadlineMs) throw e;
        await sleep(delay, target.signal);
      }
    }
  }

  /**
   * One request with auth and redirects; resolves with a 2xx response whose body is unread.
   * 404 → `notFound(the registry's message)`, 401/403 → RegistryUnauthorizedError, 429/5xx → retryable failure.
   */
  private async send(url: URL, target: PullTarget, extraHeaders: Record<string, string>, notFound: (registryMessage: string) => Error): Promise<WatchedResponse> {
    const scope = `repository:${target.repository}:pull`;
    let current = url;
    let challenged = false;
    for (let hops = 0; hops <= MAX_REDIRECTS; ) {
      const sameOrigin = current.origin === url.origin;
      const authorization = sameOrigin ? this.auth.authorization(scope) : undefined;
      const headers = { ...extraHeaders, ...(authorization ? { authorization } : {}) };
      const res = await this.rawRequest(current, headers, target);
      if (res.statusCode >= 200 && res.statusCode < 300) return res;
      if ([301, 302, 303, 307, 308].includes(res.statusCode)) {
        const location = headerValue(res.headers, 'location');
        await res.body.dump();
        if (!location) throw new ImagePullFailedError(target.image, `registry answered HTTP ${res.statusCode} without a Location`, { retryable: false });
        if (!URL.canParse(location, current)) {
          throw new ImagePullFailedError(target.image, `registry answered HTTP ${res.statusCode} with a Location that is not a URL: ${JSON.stringify(registryText(location))}`, { retryable: false });
        }
        current = new URL(location, current);
        hops++;
        continue;
      }
      const body = await this.errorBody(res);
      if (res.statusCode === 401 && sameOrigin && !challenged) {
        challenged = true;
        if (await this.auth.answer(headerValue(res.headers, 'www-authenticate'), scope, authorization, target.signal)) continue;
      }
      throw this.statusError(target, res, body, notFound);
    }
    throw new ImagePullFailedError(target.image, `more than ${MAX_REDIRECTS} redirects for ${url.pathname}`, { retryable: false });
  }

  private statusError(target: PullTarget, res: Dispatcher.ResponseData, body: string, notFound: (registryMessage: string) => Error): Error {
    const message = registryMessage(body);
    const status = res.statusCode;
    if (status === 404) return notFound(message);
    if (status === 401 || status === 403) return new RegistryUnauthorizedError(this.registry, `HTTP ${status}: ${message}`);
    if (status === 429 || status >= 500) {
      return new RetryableFailure(target.image, `registry ${this.registry} answered HTTP ${status}: ${message}`, retryAfterMs(res.headers));
    }
    // Go's TLS servers (Distribution) answer a plain http request with this 400.
    if (status === 400 && /HTTP request to an HTTPS server/i.test(message)) {
      const detail = `registry ${this.registry} answered HTTP 400: ${message.replace(/\.$/, '')}; it serves https only: give it a certs.d entry (with its CA if that is private)`;
      return new ImagePullFailedError(target.image, detail, { retryable: false });
    }
    return new ImagePullFailedError(target.image, `registry ${this.registry} answered HTTP ${status}: ${message}`, { retryable: false });
  }

  /**
   * GET, or POST of `body` (only the OAuth2 token flow posts), watched for stalls until its body
   * closes: a stalled transfer fails with a final ImagePullFailedError saying so.
   */
  private async rawRequest(url: URL, headers: Record<string, string>, target: PullTarget, body?: string): Promise<WatchedResponse> {
    const watch = this.watch(url, target);
    try {
      const res = await request(url, {
        dispatcher: url.origin === this.origin ? this.dispatcher : this.otherOrigins(url),
        method: body === undefined ? 'GET' : 'POST',
        ...(body === undefined ? {} : { body }),
        headers: { 'user-agent': 'sbx-image-store', ...headers },
        signal: target.signal ? AbortSignal.any([target.signal, watch.signal]) : watch.signal,
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
      });
      res.body.once('close', () => watch.stop());
      return Object.assign(res, { watch });
    } catch (e) {
      watch.stop();
      throw watch.stalled && !target.signal?.aborted ? watch.error : this.transportError(target, e, url);
    }
  }

  /** The stall watch of one request to `url`. */
  private watch(url: URL, target: PullTarget): TransferWatch {
    const { stallMs, stallBytes } = this.stall;
    const who = url.origin === this.origin ? `registry ${this.registry}` : `${url.host} (reached from registry ${this.registry})`;
    const detail = `the transfer from ${who} stalled: fewer than ${stallBytes} bytes arrived in ${stallMs / 1000} s`;
    return new TransferWatch(this.stall, () => new ImagePullFailedError(target.image, detail, { retryable: false }));
  }

  private async readBody(target: PullTarget, res: WatchedResponse, maxBytes: number, tooBig: () => Error): Promise<Buffer> {
    try {
      return await readCapped(res.body, maxBytes, tooBig, res.watch);
    } catch (e) {
      throw res.watch.stalled && !target.signal?.aborted ? res.watch.error : this.transportError(target, e);
    }
  }

  private async errorBody(res: Dispatcher.ResponseData): Promise<string> {
    try {
      return (await readCapped(res.body, MAX_ERROR_BODY, () => new Error('error body too large'))).toString('utf8');
    } catch {
      return '';
    }
  }

  /**
   * Maps a transport failure to a retryable ImagePullFailedError, a TLS failure to a final one
   * naming the host and the reason; SbxErrors and aborts pass through.
   */
  transportError(target: PullTarget, e: unknown, url?: URL): Error {
    if (e instanceof SbxError) return e;
    if (target.signal?.aborted) return target.signal.reason instanceof Error ? target.signal.reason : (e as Error);
    const ownOrigin = url === undefined || url.origin === this.origin;
    const host = ownOrigin ? this.registry : url.host;
    const tls = describeTlsFailure(e, host);
    if (tls !== null) {
      const who = ownOrigin ? `registry ${this.registry}` : `${url.host} (reached from registry ${this.registry})`;
      return new ImagePullFailedError(target.image, `TLS with ${who} failed: ${registryText(tls, 400)}`, { cause: e, retryable: false });
    }
    const err = e as { code?: string; message?: string; cause?: { code?: string; message?: string } };
    const code = err.cause?.code ?? err.code;
    const detail = `cannot reach registry ${this.registry}: ${registryText([code, err.cause?.message ?? err.message].filter(Boolean).join(' '))}`;
    return new RetryableFailure(target.image, detail, undefined, e);
  }

  /** A token server request: GET (Docker token flow) or, with `form`, the OAuth2 POST. */
  private async tokenRequest(url: URL, headers: Record<string, string>, signal?: AbortSignal, form?: string): Promise<{ status: number; body: string }> {
    const target: PullTarget = { image: this.registry, repository: '', ...(signal ? { signal } : {}) };
    const res = await this.rawRequest(url, { accept: 'application/json', ...headers }, target, form);
    const tooBig = () => new RegistryUnauthorizedError(this.registry, 'its token server answered more than 1 MiB');
    const body = await this.readBody(target, res, MAX_TOKEN_BODY, tooBig);
    return { status: res.statusCode, body: body.toString('utf8') };
  }
}
