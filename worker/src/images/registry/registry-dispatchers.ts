/**
 * Which undici dispatcher reaches which host: a host with a certs.d entry gets its own Agent (built
 * on first use, kept for the store's life), every other host the shared dispatcher. Lookups are
 * per host, so a registry's CAs and client certificate never serve another origin (a blob
 * redirect's storage host, a token server): those hosts get their own entry or the system roots.
 * The per-host Agents apply the egress policy like the shared one does.
 */
import type { Agent, Dispatcher } from 'undici';
import type { EgressPolicy } from '../../../../core/src/egress/egress-policy.ts';
import { newRegistryAgent } from './registry-agent.ts';
import type { RegistryTls } from './registry-certs.ts';

export class RegistryDispatchers {
  private readonly agents = new Map<string, Agent>();

  constructor(
    private readonly shared: Dispatcher,
    private readonly tls: Readonly<Record<string, RegistryTls>>,
    private readonly egress: EgressPolicy,
  ) {}

  /** Whether `host` ('registry.example.com:5000', a registry name or a URL's host) has a certs.d entry. */
  hasEntry(host: string): boolean {
    return Object.hasOwn(this.tls, host);
  }

  forHost(host: string): Dispatcher {
    if (!this.hasEntry(host)) return this.shared;
    let agent = this.agents.get(host);
    if (!agent) {
      agent = newRegistryAgent(this.egress, this.tls[host]);
      this.agents.set(host, agent);
    }
    return agent;
  }

  /** Closes the per-host Agents (not the shared dispatcher). */
  async close(): Promise<void> {
    const agents = [...this.agents.values()];
    this.agents.clear();
    await Promise.all(agents.map((a) => a.close()));
  }
}
