/**
 * The registry clients of one image store: one per registry (and per job's own credentials), each
 * with its mirrors, each on its host's dispatcher (registry-dispatchers.ts). Credentials come from
 * the job, else the configured ones, else the Docker config.json.
 */
import { createHash } from 'node:crypto';
import type { Dispatcher } from 'undici';
import type { EgressAllowEntry } from '../../../../core/src/egress/egress-allow.ts';
import { EgressPolicy } from '../../../../core/src/egress/egress-policy.ts';
import { loadDockerCredentials } from './docker-credentials.ts';
import { newRegistryAgent } from './registry-agent.ts';
import type { RegistryCredentials } from './registry-auth.ts';
import type { RegistryTls } from './registry-certs.ts';
import { MIRROR_RETRY, RegistryClient, type RegistryClientOptions, type RetryPolicy } from './registry-client.ts';
import { RegistryDispatchers } from './registry-dispatchers.ts';
import type { StallRule } from './transfer-watch.ts';

export interface RegistryClientsOptions {
  /**
   * Hosts reached over plain http; loopback hosts (127.0.0.0/8, localhost, ::1) always are, unless
   * they have a `tls` entry.
   */
  insecureRegistries?: string[];
  /**
   * TLS material per host ('registry.example.com:5000', as in image references), usually from a
   * certs.d directory (loadRegistryCerts()). A host with an entry is always reached over https
   * (loopback and insecure ones too), through its own Agent trusting the system roots plus the
   * entry's CAs and presenting its client certificate. Registries, mirrors and redirect targets
   * (blob storage, token servers) each use their own host's entry, or the shared dispatcher.
   */
  tls?: Record<string, RegistryTls>;
  /**
   * Mirrors per registry ('docker.io' → ['mirror.local:5000']): pull-through caches serving the same
   * repositories, tried in order before the registry itself (see RegistryClientOptions.mirrors).
   */
  mirrors?: Record<string, string[]>;
  /** Credentials per registry host ('docker.io', 'host:port'); they win over dockerConfigPath. */
  credentials?: Record<string, RegistryCredentials>;
  /** A Docker config.json whose `auths` supply credentials. */
  dockerConfigPath?: string;
  retry?: RetryPolicy;
  /**
   * Shared HTTP dispatcher for hosts without a `tls` entry; by default the store makes (and closes)
   * its own keep-alive Agent. Hosts with an entry always use their own Agent. A dispatcher given
   * here is used as it is: it applies `egressAllow` only if it was made by newRegistryAgent().
   */
  dispatcher?: Dispatcher;
  /**
   * Non-public destinations registries, mirrors, blob redirects and token servers may be reached at
   * (SBX_EGRESS_ALLOW, core/src/egress/egress-allow.ts). Default none: loopback, private,
   * link-local and every other non-public address are refused (egress_refused), checked on the
   * address actually connected to.
   */
  egressAllow?: readonly EgressAllowEntry[];
  /** A transfer receiving fewer than stallBytes over stallMs fails (SBX_PULL_STALL_*). Default 64 KiB in 30 s. */
  stall?: StallRule;
  /**
   * Clients kept for later pulls (their tokens), the least recently used dropped first. Default 256.
   * Tenants name registries and bring credentials of their own, each a client: unbounded, they grew
   * the worker's heap by 139 MB per 100,000 distinct credentials.
   */
  maxClients?: number;
}

export const DEFAULT_MAX_REGISTRY_CLIENTS = 256;

export class RegistryClients {
  private readonly dispatcher: Dispatcher;
  private readonly ownsDispatcher: boolean;
  private readonly dispatchers: RegistryDispatchers;
  private readonly clients = new Map<string, RegistryClient>();
  private credentialsPromise: Promise<Map<string, RegistryCredentials>> | null = null;

  constructor(private readonly opts: RegistryClientsOptions) {
    this.ownsDispatcher = opts.dispatcher === undefined;
    const egress = new EgressPolicy(opts.egressAllow);
    this.dispatcher = opts.dispatcher ?? newRegistryAgent(egress);
    this.dispatchers = new RegistryDispatchers(this.dispatcher, opts.tls ?? {}, egress);
  }

  /** The client for `registry`, with the job's own `credentials` if it has any (a client of their own). */
  async get(registry: string, credentials: RegistryCredentials | undefined): Promise<RegistryClient> {
    const key = credentials ? credentialsKey(registry, credentials) : registry;
    const existing = this.clients.get(key);
    if (existing) {
      // Most recently used last: the first in the map is dropped first.
      this.clients.delete(key);
      this.clients.set(key, existing);
      return existing;
    }
    const configured = credentials ?? this.opts.credentials?.[registry] ?? (await this.dockerCredentials()).get(registry);
    const mirrors: RegistryClient[] = [];
    for (const host of this.opts.mirrors?.[registry] ?? []) {
      const mirrorCredentials = this.opts.credentials?.[host] ?? (await this.dockerCredentials()).get(host);
      mirrors.push(this.newClient(host, { retry: MIRROR_RETRY, ...(mirrorCredentials ? { credentials: mirrorCredentials } : {}) }));
    }
    const client = this.newClient(registry, {
      mirrors,
      ...(configured ? { credentials: configured } : {}),
      ...(this.opts.retry ? { retry: this.opts.retry } : {}),
    });
    this.clients.set(key, client);
    // A dropped client needs no closing: its connections are the dispatcher's, and a pull still
    // using it keeps it until that pull ends (a later one gets a new client).
    const max = Math.max(1, this.opts.maxClients ?? DEFAULT_MAX_REGISTRY_CLIENTS);
    for (const oldest of this.clients.keys()) {
      if (this.clients.size <= max) break;
      this.clients.delete(oldest);
    }
    return client;
  }

  /** Clients held for later pulls (at most `maxClients`). */
  get size(): number {
    return this.clients.size;
  }

  async close(): Promise<void> {
    await this.dispatchers.close();
    if (this.ownsDispatcher) await this.dispatcher.close();
  }

  /** A client for `registry` (a registry or a mirror) on its host's dispatcher. */
  private newClient(registry: string, extra: Partial<RegistryClientOptions>): RegistryClient {
    return new RegistryClient({
      registry,
      dispatcher: this.dispatchers.forHost(registry),
      otherOrigins: (url) => this.dispatchers.forHost(url.host),
      https: this.dispatchers.hasEntry(registry),
      insecureRegistries: this.opts.insecureRegistries ?? [],
      ...(this.opts.stall ? { stall: this.opts.stall } : {}),
      ...extra,
    });
  }

  private dockerCredentials(): Promise<Map<string, RegistryCredentials>> {
    const path = this.opts.dockerConfigPath;
    this.credentialsPromise ??= path ? loadDockerCredentials(path) : Promise.resolve(new Map());
    return this.credentialsPromise;
  }
}

/** Identifies a job's own credentials for a registry without keeping them (cache visibility). */
export function credentialsKey(registry: string, c: RegistryCredentials): string {
  return createHash('sha256').update([registry, c.username ?? '', c.password ?? '', c.identityToken ?? ''].join('\u0000')).digest('hex');
}
