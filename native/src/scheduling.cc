#include "scheduling.h"

#include <errno.h>
#include <linux/capability.h>
#include <linux/sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "sys.h"

namespace sbx::sched {
namespace {

using sys::sc;

struct SchedAttr {  // struct sched_attr, SCHED_ATTR_SIZE_VER1 (its header clashes with glibc's sched.h)
  uint32_t size, sched_policy;
  uint64_t sched_flags;
  int32_t sched_nice;
  uint32_t sched_priority;
  uint64_t sched_runtime, sched_deadline, sched_period;
  uint32_t sched_util_min, sched_util_max;
};
static_assert(sizeof(SchedAttr) == 56);

}  // namespace

// P1: nothing of the worker's scheduling reaches the job. A worker thread running SCHED_FIFO/RR,
// SCHED_DEADLINE, at a negative nice, with util clamps or an I/O priority would otherwise pass them
// on through clone (the command and every process it forks would inherit them: a job that spins at
// real-time priority starves the host). Reset to SCHED_BATCH at nice 0 with the default clamps and
// no I/O priority (class none: derived from nice). SCHED_BATCH is SCHED_OTHER's fair share without
// wake-up preemption: the job's pid 1, woken by the launcher's job message and "G", waits for the
// launcher's thread to block instead of taking its CPU in the middle of the launch (on a busy
// 2-vCPU host that send cost the worker's event loop 0.7 ms in one launch of three); a job's
// processes still get their full share, by the tick. A job may set itself back to SCHED_OTHER (any
// process may); it can never go real-time (RLIMIT_RTPRIO 0) nor below nice 0. The reset-on-fork
// flag is cleared too (sched_setattr without SCHED_FLAG_RESET_ON_FORK). A nice above 0 (a worker
// deliberately run "nice") is kept when lowering it needs CAP_SYS_NICE we lack: never raised.
// kIdle is that reset, then SCHED_IDLE (a pooled setup while it is made and waits): a switch to
// SCHED_IDLE leaves the nice value as it was, so the reset to nice 0 has to come first.
bool set(pid_t pid, Policy p, Error& err) {
  if (p == Policy::kIdle) {
    RETURN_ON_FAILURE(set(pid, Policy::kJob, err));
    SchedAttr idle;
    sys::bzero(&idle, sizeof idle);
    idle.size = sizeof idle;
    idle.sched_policy = SCHED_IDLE;
    // no flags: the nice (0) and default clamps just set stay as they are
    long r = sc(__NR_sched_setattr, pid, &idle, 0);
    return r == 0 || fail(err, "sched", "sched_setattr", "SCHED_IDLE", r);
  }
  SchedAttr attr;
  sys::bzero(&attr, sizeof attr);
  attr.size = sizeof attr;
  attr.sched_policy = SCHED_BATCH;
  attr.sched_flags = SCHED_FLAG_UTIL_CLAMP_MIN | SCHED_FLAG_UTIL_CLAMP_MAX;
  attr.sched_util_min = attr.sched_util_max = (uint32_t)-1;  // -1: back to the system default
  long r = sc(__NR_sched_setattr, pid, &attr, 0);
  if (r == -EOPNOTSUPP || r == -EINVAL) {  // a kernel without util clamping (CONFIG_UCLAMP_TASK)
    attr.sched_flags = 0;
    attr.sched_util_min = attr.sched_util_max = 0;
    r = sc(__NR_sched_setattr, pid, &attr, 0);
  }
  if (r == -EPERM) {  // lowering a positive nice needs CAP_SYS_NICE: keep it (20 - nice from getpriority)
    long cur = sc(__NR_getpriority, PRIO_PROCESS, pid);
    attr.sched_nice = cur > 0 && cur < 20 ? (int32_t)(20 - cur) : 0;
    r = sc(__NR_sched_setattr, pid, &attr, 0);
  }
  if (r < 0) return fail(err, "sched", "sched_setattr", "", r);
  r = sc(__NR_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, pid, 0 /* IOPRIO_CLASS_NONE */);
  return r == 0 || fail(err, "sched", "ioprio_set", "", r);
}

bool canRaise() {
  static const bool capable = [] {
    __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct d[2] = {};
    if (sc(__NR_capget, &h, d) != 0) return false;
    return (d[CAP_SYS_NICE / 32].effective & (1u << (CAP_SYS_NICE % 32))) != 0;
  }();
  return capable;
}

}  // namespace sbx::sched
