/**
 * The jobs' egress proxy on its own, for egress-bench.ts: listens on 127.0.0.1 (a port of its own)
 * instead of a job's namespace, allowing the non-public destinations given as its argument
 * (SBX_JOB_EGRESS_ALLOW syntax), every port, no byte budget. Prints its port.
 */
import { egressAllowList } from '../../core/src/egress/egress-allow.ts';
import { parsePortSet } from '../../core/src/egress/port-set.ts';
import { createLogger } from '../../core/src/logger.ts';
import { startEgressProxy } from '../src/egress/egress-proxy.ts';
import { JobEgressRules } from '../src/egress/job-egress-rules.ts';

const rules = new JobEgressRules({ allow: egressAllowList(process.argv[2] ?? ''), ports: parsePortSet('*')!, maxConnections: 4096, maxBytes: null });
const proxy = await startEgressProxy({ host: '127.0.0.1', port: 0 }, rules, { jobId: 'bench', logger: createLogger('egress-bench', 'silent') });
process.stdout.write(`${proxy.address().port}\n`);
process.on('SIGTERM', () => void proxy.close().then(() => process.exit(0)));
