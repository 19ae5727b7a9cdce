// The setup child: runs on its own stack in the launcher's address space (clone3 CLONE_VM) inside
// the job's new namespaces, does the privileged setup with raw syscalls only, then execs sbx-init.
#pragma once
#include <stddef.h>
#include <vector>
#include "mnt.h"

namespace sbx::child {

constexpr int kMinFd = 10;  // so dup3() onto 0..3 can never clobber a source fd

struct Args {  // prepared by the launcher before clone, read-only afterwards
  int syncFd, stdinFd, stdoutFd, stderrFd, initFd;  // all >= kMinFd, all O_CLOEXEC
  const mnt::Op* ops;
  size_t nops;
  const char* hostname;
  size_t hostnameLen;
  char* const* initArgv;  // {"sbx-init", argv..., NULL}
  char* const* initEnvp;  // the job's env
  const char* const* cgroupJoin;  // files to write "0" to (cgroup v1 "tasks"), may be empty
  size_t ncgroupJoin;
  int usernsFd;  // >= kMinFd: handed to sbx-init as fd 4 (it joins it); -1: no user namespace
  int netFd;     // a fresh network namespace to join (lo up), or -1: make one
  uint64_t* trace;  // phase times (trace.h), or nullptr
  // A pooled setup (zygote.h): join the (pre-made) cgroups, unshare, run the whole mount program
  // (pivot_root included) and exec sbx-init, which waits for its job; no "G", no hostname here.
  bool zygote;
  const int* joinFds;  // zygote: the groups' `tasks` files, opened before clone (the groups are renamed
                       // when a job takes it, perhaps before the child got to join: an fd still works)
  int filesFd = -1;    // >= kMinFd: the job's input files, handed to sbx-init as fd 5; -1: none
  int baseMntnsFd = -1;  // the mount namespace to join before unsharing (mnt.h baseNamespace()), -1: unshare
                         // from the launcher's
  int hostRootFd = -1;   // with baseMntnsFd: the host's "/" (O_PATH), from which cgroupJoin files are opened
  // Every fd >= kMinFd named above (and by the ops), sorted, without repeats (keepOnly() sets them).
  // The child closes every other fd >= kMinFd its copy of our fd table holds as its first step.
  const int* keptFds = nullptr;
  size_t nkept = 0;
};

// Launcher, before clone: fills `storage` with the fds `a` and its ops name and points a.keptFds at
// it (`storage` must live as long as `a`). Without it the child's copies of every other fd of ours
// (another job's mount namespace, say) stay open until its exec of sbx-init, and the last close of
// one lands there: that job's whole mount teardown, charged to this job's cgroups, before this
// setup is ready.
void keepOnly(Args& a, std::vector<int>& storage);

int main(void* args);  // clone entry point; returns only on failure (after reporting it)

}  // namespace sbx::child
