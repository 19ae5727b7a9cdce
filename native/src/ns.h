// Namespaces: creating the job's process (parent side) and the per-namespace setup the child does.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "error.h"

namespace sbx::ns {

// New pid, mount, uts, ipc and network namespaces (+ cgroup namespace where cgroup v2 is used).
constexpr uint64_t kCloneFlags = 0x20000000 /*CLONE_NEWPID*/ | 0x00020000 /*CLONE_NEWNS*/ |
                                 0x04000000 /*CLONE_NEWUTS*/ | 0x08000000 /*CLONE_NEWIPC*/ |
                                 0x40000000 /*CLONE_NEWNET*/;

struct Clone {
  int pid = -1;
  int pidfd = -1;
};

// clone3(CLONE_VM | namespaces | CLONE_PIDFD [| CLONE_INTO_CGROUP]) running fn(arg) on `stack`.
// The child shares our memory but not our fd table or signal handlers. All signals are blocked
// around the call so the child starts with every signal blocked. cgroupFd < 0: no CLONE_INTO_CGROUP.
bool cloneChild(uint64_t nsFlags, int cgroupFd, void* stack, size_t stackSize, int (*fn)(void*), void* arg,
                Clone& out, Error& err);

// Setup child (async-signal-safe):
bool setHostnameInChild(const char* name, size_t len, Error& err);
bool loopbackUpInChild(Error& err);

}  // namespace sbx::ns
