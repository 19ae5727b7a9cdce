/**
 * Where a network "egress" job may connect through its proxy (egress-proxy.ts): the server's rules
 * (SBX_JOB_EGRESS_ALLOW's non-public exceptions to "public addresses only", SBX_JOB_EGRESS_PORTS)
 * narrowed by the job's own `egressHosts`. What can be judged from the request alone is judged
 * before any DNS lookup (`precheck`); the address is judged on what the name resolved to, by the
 * connector (core/src/egress/guarded-connector.ts), and again on the connected socket.
 *
 * The worker host's own interface addresses are refused like loopback (unless SBX_JOB_EGRESS_ALLOW
 * names them), public or not: a job must not reach the worker host's own services, whatever they
 * listen on.
 */
import { EgressPolicy } from '../../../core/src/egress/egress-policy.ts';
import { normalizeHostName, type EgressAllowEntry } from '../../../core/src/egress/egress-allow.ts';
import { isPublicAddress } from '../../../core/src/egress/address-class.ts';
import type { OwnAddresses } from '../../../core/src/egress/host-addresses.ts';
import { bareAddress, parseIp } from '../../../core/src/egress/ip-address.ts';
import type { PortSet } from '../../../core/src/egress/port-set.ts';

/** The server's side (worker env). */
export interface JobEgressConfig {
  /** SBX_JOB_EGRESS_ALLOW: non-public destinations jobs may reach. */
  allow: readonly EgressAllowEntry[];
  /** SBX_JOB_EGRESS_PORTS. */
  ports: PortSet;
  /** SBX_JOB_EGRESS_CONNECTIONS: a job's connections to its proxy at once. */
  maxConnections: number;
  /** SBX_JOB_EGRESS_BYTES: bytes one job may move through its proxy, both ways together (null: no limit). */
  maxBytes?: number | null;
  /** SBX_JOB_EGRESS_REFUSALS: requests one job's proxy refuses before it stops listening (null: no limit). */
  maxRefusals?: number | null;
  /** The worker host's own addresses (default: its interfaces' addresses, read at most every 5 s). */
  ownAddresses?: OwnAddresses;
}

/** `*.example.com` matches the subdomains of example.com; anything else the name itself. */
function hostMatches(pattern: string, name: string): boolean {
  return pattern.startsWith('*.') ? name.endsWith(pattern.slice(1)) && name.length > pattern.length - 1 : name === pattern;
}

export class JobEgressRules {
  readonly policy: EgressPolicy;
  private readonly hosts: string[] | null;

  /** `hosts`: the job's egressHosts (none: every public host). */
  constructor(readonly config: JobEgressConfig, hosts?: readonly string[]) {
    this.policy = new EgressPolicy(config.allow, config.ownAddresses ? { ownAddresses: config.ownAddresses } : {});
    this.hosts = hosts?.length ? hosts.map(normalizeHostName) : null;
  }

  /** Why `host`:`port` is refused before any lookup, or null when it may go on to DNS. */
  precheck(host: string, port: number): string | null {
    if (!this.config.ports.has(port)) return `port ${port} is not open to jobs (this server's SBX_JOB_EGRESS_PORTS: ${this.config.ports.text})`;
    const name = normalizeHostName(bareAddress(host));
    const literal = parseIp(name) !== null;
    if (this.hosts && (literal || !this.hosts.some((p) => hostMatches(p, name)))) return `${name} is not one of the job's egressHosts`;
    if (literal && !this.policy.allows({ host, port, address: name })) {
      return isPublicAddress(name) ? `${name} is this worker host's own address` : `${name} is not a public address`;
    }
    return null;
  }
}
