// Namespaces: creating the job's process (parent side) and the per-namespace setup the child does.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "error.h"
#include "fd.h"

namespace sbx::ns {

// The pid namespace is made by clone (the child must be its pid 1), and the uts namespace too (a
// few words of memory), so the child is never in the host's: the launcher may set a pooled
// setup's hostname through its pidfd at any time (setHostnameOf). The mount, ipc and network
// namespaces are made by the child itself with unshare(), so their cost (a new network namespace
// alone is ~0.5 ms) is paid on the child's CPU, not on Node's main thread.
constexpr uint64_t kCloneFlags = 0x20000000 /*CLONE_NEWPID*/ | 0x04000000 /*CLONE_NEWUTS*/;
constexpr uint64_t kCloneNewNet = 0x40000000;
constexpr uint64_t kUnshareFlags = 0x00020000 /*CLONE_NEWNS*/ | 0x08000000 /*CLONE_NEWIPC*/;

// Fresh network namespaces, made ahead of time by a dedicated thread (a new network namespace
// costs ~0.7 ms, the biggest single step of a launch). Each one is handed out once and never
// reused; `lo` is already up. take() returns -1 when the pool is empty (the child then makes its
// own). The fd is O_CLOEXEC and >= child::kMinFd.
Fd takeNetns();
// A namespace from the pool, or, when it is empty, one made now on a short-lived thread (lo up):
// for callers that need the namespace itself before the child exists (listenIn, a pooled setup).
bool takeOrMakeNetns(Fd& out, Error& err);

// A TCP socket listening on 127.0.0.1:port (O_CLOEXEC, non-blocking) in the network namespace of
// `nsFd` (a namespace fd: a pooled setup's is kept for this, zygote.h). This thread enters it, makes the
// socket and comes back (a thread that cannot come back aborts the process, as setHostnameOf does).
// The socket keeps the namespace alive until it is closed.
bool listenIn(int nsFd, uint16_t port, Fd& out, Error& err);

struct Clone {
  int pid = -1;
  Fd pidfd;
};

// A stack for cloneChild (nullptr with errno on failure), and its release once the child has exec'd
// or exited. Under AddressSanitizer (native/tools/sanitize.sh) both also clear the shadow of the
// range: a child that execs or exits never returns from its frames, so the redzones around their
// locals stay poisoned in the shadow it shares with us, and whatever is mapped there next (another
// child's stack, V8's heap) would be reported as overflowing them.
void* mapStack(size_t size);
void unmapStack(void* stack, size_t size);

// clone3(CLONE_VM | namespaces | CLONE_PIDFD [| CLONE_INTO_CGROUP]) running fn(arg) on `stack`.
// The child shares our memory but not our fd table or signal handlers. All signals are blocked
// around the call so the child starts with every signal blocked. cgroupFd < 0: no CLONE_INTO_CGROUP.
bool cloneChild(uint64_t nsFlags, int cgroupFd, void* stack, size_t stackSize, int (*fn)(void*), void* arg,
                Clone& out, Error& err);

// Setup child (async-signal-safe):
// New cgroup namespace rooted at the cgroups the child has just joined (hides host cgroup paths).
bool unshareCgroupInChild(Error& err);

// Close `fd` on a background thread (the last reference to a namespace: its teardown — unmounting
// the job's file systems, an RCU grace period — must not run on the JS thread).
void releaseLater(Fd fd);

// Setup child: send our mount namespace to the launcher (best effort; see proto.h 'N'). nsDirFd:
// this process's /proc/self/ns opened before it left the host's mount namespace, or -1.
void shareMountNsInChild(int syncFd, int nsDirFd = -1);

// Setup child: join the base mount namespace (mnt.h baseNamespace()) so the unshare that follows
// copies it, not the host's. Opens /proc/self/ns first (for shareMountNsInChild: the base has no
// /proc) into nsDirFd.
bool joinBaseMountNsInChild(int baseFd, int& nsDirFd, Error& err);

// netFd >= 0: join that (fresh, pooled) network namespace; else create one and bring lo up.
bool unshareInChild(int netFd, Error& err);
bool setHostnameInChild(const char* name, size_t len, Error& err);
// Launcher (a pooled setup, whose sbx-init has already dropped the privilege): set the hostname of
// the uts namespace of the process behind `pidfd`, by entering it with this thread only and coming
// back. A thread that cannot come back (never seen: it holds its own namespace open) aborts the
// process rather than run on in a job's namespace.
bool setHostnameOf(int pidfd, const char* name, size_t len, Error& err);
bool loopbackUpInChild(Error& err);

}  // namespace sbx::ns
