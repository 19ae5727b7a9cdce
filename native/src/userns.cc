#include "userns.h"

#include <mutex>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <string>
#include <utility>

#include "child.h"
#include "fd.h"
#include "ns.h"
#include "sys.h"

namespace sbx::userns {
namespace {

constexpr size_t kStack = 64 * 1024;
std::map<std::pair<uint32_t, uint32_t>, Fd> gCache;  // kept for the process lifetime

struct HoldArgs {
  int readFd;       // parent → holder: closed when the holder may exit
  int readyFd;      // holder → parent: one byte once the namespace is made (or not)
  uint32_t hostBase;
  int nsFd;         // out: the new namespace, opened by the holder in the file table it shares with us
  long result;      // out: 0, or the failing call's -errno
  const char* step; // out: which call failed
};

// Holder process: takes the slot's host uid and gid as its own, keeping its capabilities, makes the
// slot's user namespace (whose owner is therefore that uid, not root: the kernel charges a job's
// per-user counts, inotify instances, message-queue bytes, to each enclosing namespace's owner, and
// with root as the owner one job could use up host root's), opens it, and sits in it until the
// launcher has written the maps. Shares our memory and file table (CLONE_VM | CLONE_FILES): raw
// syscalls only, and it closes none of our fds.
int hold(void* p) {
  HoldArgs* a = static_cast<HoldArgs*>(p);
  struct { uint32_t version; int pid; } header = {0x20080522 /*_LINUX_CAPABILITY_VERSION_3*/, 0};
  struct { uint32_t effective, permitted, inheritable; } caps[2];
  long r = 0;
  auto step = [&](long result, const char* what) {
    if (r == 0 && result < 0) {
      r = result;
      a->step = what;
    }
    return r == 0;
  };
  if (step(sys::sc(__NR_prctl, 8 /*PR_SET_KEEPCAPS*/, 1, 0, 0, 0), "prctl(PR_SET_KEEPCAPS)") &&
      step(sys::sc(__NR_capget, &header, caps), "capget") &&
      step(sys::sc(__NR_setresgid, a->hostBase, a->hostBase, a->hostBase), "setresgid") &&
      step(sys::sc(__NR_setresuid, a->hostBase, a->hostBase, a->hostBase), "setresuid")) {
    // The uid change cleared the effective set (the permitted one is kept): raised again, so that
    // making a user namespace is not "unprivileged" (hosts may refuse that: AppArmor's
    // restrict_unprivileged_userns).
    caps[0].effective = caps[0].permitted;
    caps[1].effective = caps[1].permitted;
    if (step(sys::sc(__NR_capset, &header, caps), "capset") &&
        step(sys::sc(__NR_unshare, 0x10000000 /*CLONE_NEWUSER*/), "unshare(CLONE_NEWUSER)")) {
      long fd = sys::sc(__NR_openat, AT_FDCWD, "/proc/self/ns/user", O_RDONLY | O_CLOEXEC);
      if (step(fd, "open /proc/self/ns/user")) a->nsFd = (int)fd;
    }
  }
  a->result = r;
  char ok = r == 0 ? '1' : '0';
  sys::sc(__NR_write, a->readyFd, &ok, 1);
  char b;
  sys::sc(__NR_read, a->readFd, &b, 1);
  return 0;
}

bool writeMap(int pid, const char* file, uint64_t hostBase, Error& err) {
  std::string path = "/proc/" + std::to_string(pid) + "/" + file;
  std::string line = "0 " + std::to_string(hostBase) + " " + std::to_string(kRange) + "\n";
  Fd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) return fail(err, "userns", "open", path.c_str(), errno);
  bool ok = write(fd.get(), line.data(), line.size()) == (ssize_t)line.size();
  return ok || fail(err, "userns", "write", path.c_str(), errno);
}

bool create(uint64_t hostBase, Fd& out, Error& err) {
  int p[2], q[2];
  if (pipe2(p, O_CLOEXEC) != 0) return fail(err, "userns", "pipe2", "", errno);
  Fd holdR(p[0]), holdW(p[1]);
  if (pipe2(q, O_CLOEXEC) != 0) return fail(err, "userns", "pipe2", "", errno);
  Fd readyR(q[0]), readyW(q[1]);
  HoldArgs args{holdR.get(), readyW.get(), (uint32_t)hostBase, -1, 0, ""};
  void* stack = ns::mapStack(kStack);
  ns::Clone c;
  bool ok = stack && ns::cloneChild(CLONE_FILES, -1, stack, kStack, hold, &args, c, err);
  if (!stack) fail(err, "userns", "mmap", "stack", errno);
  Fd fd;
  if (ok) {
    // Its answer, or its end (a holder that died answers nothing: its pidfd says so).
    struct pollfd w[2] = {{readyR.get(), POLLIN, 0}, {c.pidfd.get(), POLLIN, 0}};
    while (poll(w, 2, -1) < 0 && errno == EINTR) {
    }
    char ready = 0;
    if (!(w[0].revents & POLLIN) || read(readyR.get(), &ready, 1) != 1) ok = fail(err, "userns", "holder", "exited before making the namespace", ECHILD);
    else if (ready != '1') ok = fail(err, "userns", args.step, "the slot's user namespace", (int)-args.result);
    Fd made(args.nsFd);  // in our file table (shared with the holder)
    ok = ok && writeMap(c.pid, "uid_map", hostBase, err) && writeMap(c.pid, "gid_map", hostBase, err);
    if (ok) {
      fd.reset(fcntl(made.get(), F_DUPFD_CLOEXEC, child::kMinFd));
      if (!fd.valid()) ok = fail(err, "userns", "fcntl", "/proc/self/ns/user", errno);
    }
  }
  holdW.reset();  // the holder exits
  if (c.pidfd.valid()) {
    siginfo_t si;
    syscall(SYS_waitid, P_PIDFD, c.pidfd.get(), &si, WEXITED, nullptr);
  }
  if (stack) ns::unmapStack(stack, kStack);
  if (!ok) return false;
  out = std::move(fd);
  return true;
}
}  // namespace

bool slotFd(uint32_t uidBase, uint32_t slot, int& fd, Error& err) {
  static std::mutex mu;  // Node's thread and the pooled setups' maker (zygote.cc)
  std::lock_guard<std::mutex> lock(mu);
  auto key = std::make_pair(uidBase, slot);
  auto it = gCache.find(key);
  if (it != gCache.end()) {
    fd = it->second.get();
    return true;
  }
  uint64_t hostBase = (uint64_t)uidBase + (uint64_t)slot * kRange;
  if (hostBase + kRange > 0xFFFFFFFFull) return fail(err, "spec", "", "uidBase + slot * 65536 exceeds the uid space", ERANGE, kInvalidSpec);
  Fd made;
  RETURN_ON_FAILURE(create(hostBase, made, err));
  fd = made.get();
  gCache[key] = std::move(made);
  return true;
}

}  // namespace sbx::userns
