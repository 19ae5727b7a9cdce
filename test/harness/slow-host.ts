/**
 * How much slower than this machine the harness's host may be: in the cgroup v2 VM
 * (infra/scripts/vm/, software emulation, a cold tsx cache) an API or worker under tsx takes tens of
 * seconds to start, not one or two. The harness's start deadlines are multiplied by it.
 */
export const HOST_SLOWDOWN = process.env.SBX_IN_CGROUP_V2_VM === '1' ? 8 : 1;
