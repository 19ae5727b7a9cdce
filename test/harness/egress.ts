/**
 * Egress allow-lists for tests. The image store refuses every non-public address by default
 * (core/src/egress), and the test registries, token servers and blob hosts all listen on loopback,
 * so tests that are not about egress allow loopback explicitly; egress tests name single host:ports.
 */
import { egressAllowList, type EgressAllowEntry } from '../../core/src/egress/egress-allow.ts';

/** 127.0.0.0/8 and ::1, every port: for tests whose servers all listen on loopback. */
export const LOOPBACK_EGRESS: readonly EgressAllowEntry[] = egressAllowList('127.0.0.0/8', '::1');

export { egressAllowList };
