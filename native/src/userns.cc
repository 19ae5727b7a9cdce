#include "userns.h"

#include <mutex>
#include <errno.h>
#include <fcntl.h>
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
  int readFd, writeFd;
};

// Holder process: sits in the new user namespace until the launcher has written the maps and
// opened /proc/<pid>/ns/user. Shares our memory (CLONE_VM): raw syscalls only.
int hold(void* p) {
  const HoldArgs* a = static_cast<const HoldArgs*>(p);
  sys::sc(__NR_close, a->writeFd);
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
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return fail(err, "userns", "pipe2", "", errno);
  Fd holdR(p[0]), holdW(p[1]);
  HoldArgs args{holdR.get(), holdW.get()};
  void* stack = mmap(nullptr, kStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  ns::Clone c;
  bool ok = stack != MAP_FAILED &&
            ns::cloneChild(0x10000000 /*CLONE_NEWUSER*/, -1, stack, kStack, hold, &args, c, err);
  if (stack == MAP_FAILED) fail(err, "userns", "mmap", "stack", errno);
  Fd fd;
  if (ok) {
    ok = writeMap(c.pid, "uid_map", hostBase, err) && writeMap(c.pid, "gid_map", hostBase, err);
    if (ok) {
      std::string nsPath = "/proc/" + std::to_string(c.pid) + "/ns/user";
      Fd raw(open(nsPath.c_str(), O_RDONLY | O_CLOEXEC));
      if (!raw.valid()) ok = fail(err, "userns", "open", nsPath.c_str(), errno);
      else {
        fd.reset(fcntl(raw.get(), F_DUPFD_CLOEXEC, child::kMinFd));
        if (!fd.valid()) ok = fail(err, "userns", "fcntl", nsPath.c_str(), errno);
      }
    }
  }
  holdW.reset();  // the holder exits
  if (c.pidfd.valid()) {
    siginfo_t si;
    syscall(SYS_waitid, P_PIDFD, c.pidfd.get(), &si, WEXITED, nullptr);
  }
  if (stack != MAP_FAILED) munmap(stack, kStack);
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
