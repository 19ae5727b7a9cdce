// The launcher's background threads (the network-namespace filler, the pooled-setup maker, the
// janitor that releases finished jobs' mount namespaces) prepare later jobs or clean up after
// earlier ones. They run kNiceSteps nice steps below the process's own priority, so that on a busy
// host the thread that launches and reports jobs (and the API and Redis beside it) comes first.
// Five steps, not more, and not SCHED_IDLE: the further down, the slower the pool refills when
// spinning jobs fill every CPU (BENCHMARKS.md, seventh and twenty-fifth sessions).
// No job inherits this: a setup resets its own scheduling first (child.cc resetScheduling()).
// Under a real-time policy (a worker run with chrt) nice does not apply, and nothing changes.
#pragma once
#include <errno.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace sbx::background {

constexpr int kNiceSteps = 5;

// Lowers the calling thread (only it: Linux's setpriority on a thread id) by kNiceSteps.
inline void lowerThisThread() {
  const id_t tid = (id_t)syscall(SYS_gettid);
  errno = 0;
  const int nice = getpriority(PRIO_PROCESS, tid);
  if (errno != 0) return;
  setpriority(PRIO_PROCESS, tid, nice + kNiceSteps > 19 ? 19 : nice + kNiceSteps);
}

}  // namespace sbx::background
