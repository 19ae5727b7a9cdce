#include "child.h"

#include <errno.h>
#include <algorithm>
#include <fcntl.h>
#include <linux/close_range.h>
#include <linux/sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "ns.h"
#include "proto.h"
#include "sys.h"
#include "trace.h"

namespace sbx::child {
namespace {

using sys::sc;

struct KernelSigaction {
  void* handler;
  unsigned long flags;
  void* restorer;
  uint64_t mask;
};

bool dieWithLauncher(Error& err) {
  long r = sc(__NR_prctl, PR_SET_PDEATHSIG, SIGKILL);
  return r == 0 || fail(err, "pdeathsig", "prctl", "", r);
}

// P1: nothing of the worker's scheduling reaches the job. A worker thread running SCHED_FIFO/RR,
// SCHED_DEADLINE, at a negative nice, with util clamps or an I/O priority would otherwise pass them
// on through clone (the command and every process it forks would inherit them: a job that spins at
// real-time priority starves the host). Reset, first thing, to SCHED_BATCH at nice 0 with the
// default clamps and no I/O priority (class none: derived from nice). SCHED_BATCH is SCHED_OTHER's
// fair share without wake-up preemption: the job's pid 1, woken by the launcher's job message and
// "G", waits for the launcher's thread to block instead of taking its CPU in the middle of the
// launch (on a busy 2-vCPU host that send cost the worker's event loop 0.7 ms in one launch of
// three); a job's processes still get their full share, by the tick. A job may set itself back to
// SCHED_OTHER (any process may); it can never go real-time (RLIMIT_RTPRIO 0) nor below nice 0.
// The reset is also needed for the v1 cgroup join: with CONFIG_RT_GROUP_SCHED a real-time task
// cannot join a cpu group whose rt_runtime_us is 0 (every new group), so launches from a real-time
// worker failed there (EINVAL). The reset-on-fork
// flag is cleared too (sched_setattr without SCHED_FLAG_RESET_ON_FORK). A nice above 0 (a worker
// deliberately run "nice") is kept when lowering it needs CAP_SYS_NICE we lack: never raised.
struct SchedAttr {  // struct sched_attr, SCHED_ATTR_SIZE_VER1 (its header clashes with glibc's sched.h)
  uint32_t size, sched_policy;
  uint64_t sched_flags;
  int32_t sched_nice;
  uint32_t sched_priority;
  uint64_t sched_runtime, sched_deadline, sched_period;
  uint32_t sched_util_min, sched_util_max;
};
static_assert(sizeof(SchedAttr) == 56);

bool resetScheduling(Error& err) {
  SchedAttr attr;
  sys::bzero(&attr, sizeof attr);
  attr.size = sizeof attr;
  attr.sched_policy = SCHED_BATCH;
  attr.sched_flags = SCHED_FLAG_UTIL_CLAMP_MIN | SCHED_FLAG_UTIL_CLAMP_MAX;
  attr.sched_util_min = attr.sched_util_max = (uint32_t)-1;  // -1: back to the system default
  long r = sc(__NR_sched_setattr, 0, &attr, 0);
  if (r == -EOPNOTSUPP || r == -EINVAL) {  // a kernel without util clamping (CONFIG_UCLAMP_TASK)
    attr.sched_flags = 0;
    attr.sched_util_min = attr.sched_util_max = 0;
    r = sc(__NR_sched_setattr, 0, &attr, 0);
  }
  if (r == -EPERM) {  // lowering a positive nice needs CAP_SYS_NICE: keep it (20 - nice from getpriority)
    long cur = sc(__NR_getpriority, PRIO_PROCESS, 0);
    attr.sched_nice = cur > 0 && cur < 20 ? (int32_t)(20 - cur) : 0;
    r = sc(__NR_sched_setattr, 0, &attr, 0);
  }
  if (r < 0) return fail(err, "sched", "sched_setattr", "", r);
  r = sc(__NR_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, 0, 0 /* IOPRIO_CLASS_NONE */);
  return r == 0 || fail(err, "sched", "ioprio_set", "", r);
}

// Wait for the launcher's go-ahead: it has created the job's cgroups. EOF here means the launcher
// died after clone (the getppid() re-check does not work across a pid namespace boundary: our
// parent is outside it, getppid() is 0).
bool waitForGo(const Args& a, Error& err) {
  char go = 0;
  long r = sc(__NR_read, a.syncFd, &go, 1);
  if (r != 1 || go != 'G') return fail(err, "sync", "read", "launcher gone", r < 0 ? r : -EPIPE);
  return true;
}

// Join the job's cgroups before anything of the job runs (see cgroup_v1.cc for why by ourselves).
bool joinCgroups(const Args& a, Error& err) {
  for (size_t i = 0; i < a.ncgroupJoin; i++) {
    const char* file = a.cgroupJoin[i];
    // In the base mount namespace the host's cgroup files are reached from its "/" (an fd of before).
    long fd = a.joinFds ? a.joinFds[i]
              : a.hostRootFd >= 0 ? sc(__NR_openat, a.hostRootFd, file + (file[0] == '/'), O_WRONLY | O_CLOEXEC | O_NOFOLLOW)
                                  : sc(__NR_openat, AT_FDCWD, file, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return fail(err, "cgroup-join", "open", a.cgroupJoin[i], fd);
    long r = sc(__NR_write, fd, "0", 1);
    sc(__NR_close, fd);
    if (r != 1) return fail(err, "cgroup-join", "write", a.cgroupJoin[i], r < 0 ? r : -EIO);
  }
  return true;
}

// The launcher's fds this child does not use, closed while they are still the launcher's too: a
// namespace or mount the launcher lets go of is then torn down by the launcher (ns::releaseLater's
// thread), not by this child's exec (child.h keepOnly). fds below kMinFd are the launcher's stdio
// and the like, replaced or closed on exec later.
bool closeUnused(const Args& a, Error& err) {
  unsigned from = kMinFd;
  for (size_t i = 0; i < a.nkept; i++) {  // sorted, no repeats, each >= kMinFd
    const unsigned kept = (unsigned)a.keptFds[i];
    if (kept > from) {
      long r = sc(__NR_close_range, from, kept - 1, 0);
      if (r < 0) return fail(err, "fds", "close_range", "", r);
    }
    from = kept + 1;
  }
  long r = sc(__NR_close_range, from, ~0U, 0);
  return r == 0 || fail(err, "fds", "close_range", "", r);
}

// Node installs handlers and SIG_IGNs SIGPIPE/SIGXFSZ; SIG_IGN survives execve. Every signal stays
// blocked (the launcher blocked them around clone); sbx-init unblocks them for the command.
bool resetSignals(Error&) {
  KernelSigaction dfl;
  sys::bzero(&dfl, sizeof dfl);
  for (int sig = 1; sig <= 64; sig++) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    sc(__NR_rt_sigaction, sig, &dfl, nullptr, 8);
  }
  return true;
}

// stdio on 0..2, the sync socket on 3 (the user namespace on 4, the input files on 5) for sbx-init; everything else
// close-on-exec (P2).
bool setupFds(const Args& a, int& reportFd, Error& err) {
  const int from[] = {a.stdinFd, a.stdoutFd, a.stderrFd, a.syncFd};
  for (int to = 0; to < 4; to++) {
    long r = sc(__NR_dup3, from[to], to, 0);
    if (r < 0) return fail(err, "stdio", "dup3", "", r);
  }
  reportFd = proto::kInitSyncFd;
  int first = 4;
  if (a.usernsFd >= 0) {
    long d = sc(__NR_dup3, a.usernsFd, proto::kInitUsernsFd, 0);
    if (d < 0) return fail(err, "fds", "dup3", "userns", d);
    first = proto::kInitUsernsFd + 1;
  }
  if (a.filesFd >= 0) {
    long d = sc(__NR_dup3, a.filesFd, proto::kInitFilesFd, 0);
    if (d < 0) return fail(err, "fds", "dup3", "files", d);
    first = proto::kInitFilesFd + 1;
  }
  long r = sc(__NR_close_range, first, ~0U, CLOSE_RANGE_CLOEXEC);
  if (r < 0) return fail(err, "fds", "close_range", "", r);
  return true;
}

bool execInit(const Args& a, Error& err) {
  long r = sc(__NR_execveat, a.initFd, "", a.initArgv, a.initEnvp, AT_EMPTY_PATH);
  return fail(err, "exec-init", "execveat", "sbx-init", r, r == -E2BIG ? kInvalidSpec : kSystem);
}

// The mount, ipc and network namespaces (pid and uts came with the clone). With a base mount
// namespace (child.h): first clone what the mount program attaches by path while the host's paths
// are still in reach, then join it, so the unshare copies its two mounts. `pre` gets those clones
// for setupInChild (nullptr without a base).
bool unshareNamespaces(const Args& a, long* clones, const long*& pre, Error& err) {
  int nsDirFd = -1;
  pre = nullptr;
  if (a.baseMntnsFd >= 0) {
    RETURN_ON_FAILURE(mnt::cloneSourcesInChild(a.ops, a.nops, clones, err));
    RETURN_ON_FAILURE(ns::joinBaseMountNsInChild(a.baseMntnsFd, nsDirFd, err));
    pre = clones;
  }
  RETURN_ON_FAILURE(ns::unshareInChild(a.netFd, err));
  ns::shareMountNsInChild(a.syncFd, nsDirFd);
  if (nsDirFd >= 0) sc(__NR_close, nsDirFd);
  return true;
}

// Everything up to pivot_root runs while the launcher creates the cgroups; joining them needs the
// host's /sys/fs/cgroup, so pivot_root (the last op) comes after the join. Nothing of the job runs
// before it is in its cgroups.
bool run(const Args& a, int& reportFd, Error& err) {
  trace::mark(a.trace, trace::kChildStart);
  RETURN_ON_FAILURE(dieWithLauncher(err));
  RETURN_ON_FAILURE(closeUnused(a, err));
  RETURN_ON_FAILURE(resetScheduling(err));
  long clones[mnt::kMaxOps];
  const long* pre;
  RETURN_ON_FAILURE(unshareNamespaces(a, clones, pre, err));
  RETURN_ON_FAILURE(resetSignals(err));
  trace::mark(a.trace, trace::kUnshared);
  RETURN_ON_FAILURE(mnt::setupInChild(a.ops, a.nops - 1, err, pre));
  trace::mark(a.trace, trace::kMounted);
  RETURN_ON_FAILURE(waitForGo(a, err));
  trace::mark(a.trace, trace::kGotGo);
  RETURN_ON_FAILURE(joinCgroups(a, err));
  trace::mark(a.trace, trace::kJoined);
  RETURN_ON_FAILURE(ns::unshareCgroupInChild(err));  // after joining: the job's group becomes its "/"
  RETURN_ON_FAILURE(mnt::setupInChild(a.ops + a.nops - 1, 1, err));  // pivot_root
  trace::mark(a.trace, trace::kPivoted);
  RETURN_ON_FAILURE(ns::setHostnameInChild(a.hostname, a.hostnameLen, err));
  RETURN_ON_FAILURE(setupFds(a, reportFd, err));
  trace::mark(a.trace, trace::kExecInit);
  return execInit(a, err);
}

// A pooled setup: everything but the job's hostname, stdio, command and limits (its mounts are for
// the image of the slot's last job), then sbx-init waits for the job.
bool runZygote(const Args& a, int& reportFd, Error& err) {
  RETURN_ON_FAILURE(dieWithLauncher(err));
  RETURN_ON_FAILURE(closeUnused(a, err));
  RETURN_ON_FAILURE(resetScheduling(err));  // before the join (see there), and sbx-init waits as SCHED_BATCH
  RETURN_ON_FAILURE(joinCgroups(a, err));  // made before clone: nothing it does escapes them
  long clones[mnt::kMaxOps];
  const long* pre;
  RETURN_ON_FAILURE(unshareNamespaces(a, clones, pre, err));
  RETURN_ON_FAILURE(resetSignals(err));
  RETURN_ON_FAILURE(ns::unshareCgroupInChild(err));
  RETURN_ON_FAILURE(mnt::setupInChild(a.ops, a.nops, err, pre));
  RETURN_ON_FAILURE(setupFds(a, reportFd, err));
  return execInit(a, err);
}

}  // namespace

void keepOnly(Args& a, std::vector<int>& storage) {
  storage = {a.syncFd, a.stdinFd, a.stdoutFd, a.stderrFd, a.initFd, a.usernsFd, a.netFd, a.filesFd, a.baseMntnsFd, a.hostRootFd};
  for (size_t i = 0; a.joinFds && i < a.ncgroupJoin; i++) storage.push_back(a.joinFds[i]);
  for (size_t i = 0; i < a.nops; i++) storage.insert(storage.end(), {a.ops[i].fd, a.ops[i].srcFd});
  storage.erase(std::remove_if(storage.begin(), storage.end(), [](int fd) { return fd < kMinFd; }), storage.end());
  std::sort(storage.begin(), storage.end());
  storage.erase(std::unique(storage.begin(), storage.end()), storage.end());
  a.keptFds = storage.data();
  a.nkept = storage.size();
}

int main(void* p) {
  const Args& a = *static_cast<const Args*>(p);
  proto::Msg m;
  sys::bzero(&m, sizeof m);
  int reportFd = a.syncFd;
  if (!(a.zygote ? runZygote(a, reportFd, m.error) : run(a, reportFd, m.error))) {
    m.tag = 'F';
    sc(__NR_sendto, reportFd, &m, sizeof m, MSG_NOSIGNAL, nullptr, 0);
  }
  return 1;
}

}  // namespace sbx::child
