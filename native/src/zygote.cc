#include "zygote.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <deque>
#include <map>

#include "jobmsg.h"
#include "proto.h"
#include "recv_fds.h"
#include "ns.h"
#include "userns.h"

namespace sbx::zygote {
namespace {

constexpr size_t kStackSize = 256 * 1024;
constexpr int kMaxFailures = 3;
// Per (slot, options): two, so that a slot's jobs arriving back to back find one ready while the
// one made after the previous launch is still being prepared.
constexpr size_t kDepth = 2;

using Queue = std::deque<std::unique_ptr<Zygote>>;
std::map<std::string, Queue>& pool() {
  static auto* p = new std::map<std::string, Queue>();
  return *p;
}
struct Failures {
  std::string image;  // counted for this image of the key's slot (reset when it changes)
  int n = 0;          // consecutive creation failures
};
std::map<std::string, Failures> gFailures;
std::vector<std::unique_ptr<Zygote>> gKilled;  // killed by take(), removed by the next refill()

bool raiseFd(Fd& f, Error& err) {
  if (f.get() >= child::kMinFd) return true;
  int n = fcntl(f.get(), F_DUPFD_CLOEXEC, child::kMinFd);
  if (n < 0) return fail(err, "pool", "fcntl(F_DUPFD_CLOEXEC)", "", errno);
  f.reset(n);
  return true;
}

bool alive(const Zygote& z) {
  struct pollfd p = {z.pidfd.get(), POLLIN, 0};
  return poll(&p, 1, 0) == 0;
}

// Pending packets on its socket may carry its mount namespace ('N'): released off this thread.
void drainSocket(Fd& sync) {
  char buf[512];
  while (recvWithFds(sync.get(), buf, sizeof buf, [](int f) { ns::releaseLater(Fd(f)); }) > 0) {
  }
  sync.reset();
}

bool create(const cgroup::Host& h, const spec::Options& o, const spec::Spec& s, int initFd, std::unique_ptr<Zygote>& out,
            Error& err) {
  static uint64_t counter = 0;
  const uint32_t slot = s.slot;
  auto z = std::make_unique<Zygote>();
  z->key = key(o, slot);
  z->image = imageKey(s);
  int usernsFd = -1;
  uint32_t hostBase = 0;
  if (o.userns) {
    RETURN_ON_FAILURE(userns::slotFd(o.uidBase, slot, usernsFd, err));
    hostBase = o.uidBase + slot * userns::kRange;
  }
  std::string name = "pool-" + std::to_string(getpid()) + "-" + std::to_string(++counter);
  cgroup::plan(h, o.cgroupParent, name, o.devicesCgroup, z->group);
  RETURN_ON_FAILURE(cgroup::v1::createDirs(h, o.cgroupParent, z->group, err));
  struct Undo {
    cgroup::Group* g;
    ~Undo() { if (g) { Error e; cgroup::remove(*g, e); } }
  } undo{&z->group};
  RETURN_ON_FAILURE(cgroup::v1::writeLimits(h, s.limits, z->group, err));  // the same as a direct launch writes
  z->limits = s.limits;
  // The image's layer directories, cloned here (open_tree(OPEN_TREE_CLONE): detached mounts, in no
  // mount namespace, which the setup child makes read-only (+ idmapped) and attaches): the setup
  // mounts exactly these, and take() compares them with the job's by device and inode. Close-on-
  // exec: the setup child's copies are gone once it execs sbx-init; ours are closed below.
  std::vector<Fd> layerFds;
  std::vector<int> rawLayerFds;
  for (const auto& dir : s.lowerDirs) {
    layerFds.emplace_back((int)syscall(SYS_open_tree, AT_FDCWD, dir.c_str(), 1 /* OPEN_TREE_CLONE */ | O_CLOEXEC));
    struct stat st;
    if (!layerFds.back().valid() || fstat(layerFds.back().get(), &st) != 0 || !S_ISDIR(st.st_mode))
      return fail(err, "pool", "open_tree", dir.c_str(), layerFds.back().valid() ? ENOTDIR : errno);
    z->layers.push_back(LayerId{(uint64_t)st.st_dev, (uint64_t)st.st_ino});
    rawLayerFds.push_back(layerFds.back().get());
  }
  RETURN_ON_FAILURE(mnt::buildOps(s, o, usernsFd, hostBase, z->arena, z->ops, err, &rawLayerFds));
  z->joinFiles = cgroup::selfJoinFiles(z->group);
  std::vector<Fd> joinFds;
  for (const auto& f : z->joinFiles) {
    z->joinPtrs.push_back(f.c_str());
    joinFds.emplace_back(open(f.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!joinFds.back().valid()) return fail(err, "pool", "open", f.c_str(), errno);
    RETURN_ON_FAILURE(raiseFd(joinFds.back(), err));
    z->joinFds.push_back(joinFds.back().get());
  }
  Fd devnull(open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!devnull.valid()) return fail(err, "pool", "open", "/dev/null", errno);
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return fail(err, "pool", "socketpair", "", errno);
  Fd childSync(sv[1]);
  z->sync.reset(sv[0]);
  RETURN_ON_FAILURE(raiseFd(devnull, err) && raiseFd(childSync, err));
  Fd netns = ns::takeNetns();
  static char kName[] = "sbx-zygote";
  z->argv[0] = kName;
  z->args = child::Args{childSync.get(), devnull.get(), devnull.get(), devnull.get(), initFd, z->ops.data(), z->ops.size(),
                        "", 0, z->argv, z->envp, z->joinPtrs.data(), z->joinPtrs.size(), usernsFd, netns.get(), nullptr,
                        true, z->joinFds.data()};
  z->stack = mmap(nullptr, kStackSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (z->stack == MAP_FAILED) {
    z->stack = nullptr;
    return fail(err, "pool", "mmap", "stack", errno);
  }
  ns::Clone c;
  RETURN_ON_FAILURE(ns::cloneChild(ns::kCloneFlags, -1, z->stack, kStackSize, child::main, &z->args, c, err));
  z->pid = c.pid;
  z->pidfd = std::move(c.pidfd);
  undo.g = nullptr;
  out = std::move(z);
  return true;
}

}  // namespace

Zygote::~Zygote() {
  if (stack) munmap(stack, kStackSize);
}

bool usable(const cgroup::Host& h, const spec::Options& o) {
  return o.pool && h.mode == cgroup::Mode::kV1 && o.cgroupV2Root.empty() && mnt::pooledUsable(o);
}

std::string key(const spec::Options& o, uint32_t slot) {
  return o.stateDir + "\n" + o.cgroupParent + "\n" + (o.userns ? "u" : "-") + std::to_string(o.uidBase) + "\n" +
         (o.devicesCgroup ? "d" : "-") + "\n" + std::to_string(slot);
}

std::string imageKey(const spec::Spec& s) {
  std::string k = std::to_string(s.limits.diskBytes);
  for (const auto& d : s.lowerDirs) k += '\0' + d;
  return k;
}

namespace {

// What it sent so far: 'N' (its mount namespace: kept for the job), 'R' (ready), 'F' (failed).
bool readStatus(Zygote& z) {
  for (;;) {
    proto::Msg m;
    ssize_t n = recvWithFds(z.sync.get(), &m, sizeof m, [&](int f) {
      if (m.tag == 'N' && !z.mntns.valid()) z.mntns.reset(f);
      else ns::releaseLater(Fd(f));
    });
    if (n < 0) return errno == EAGAIN;
    if (n == 0) return false;
    if (m.tag == 'R') z.ready = true;
    if (m.tag == 'F') return false;
  }
}

}  // namespace

namespace {

// Each of the job's layer directories is still the one the setup mounted. (The setup's mount holds
// that inode, so its number cannot have been reused by another directory meanwhile.)
bool sameLayers(const Zygote& z, const spec::Spec& s) {
  if (z.layers.size() != s.lowerDirs.size()) return false;
  for (size_t i = 0; i < s.lowerDirs.size(); i++) {
    struct stat st;
    if (stat(s.lowerDirs[i].c_str(), &st) != 0 || (uint64_t)st.st_dev != z.layers[i].dev || (uint64_t)st.st_ino != z.layers[i].ino)
      return false;
  }
  return true;
}

// Killed now (off the critical path: reaped and its groups removed by the next refill()).
void killLater(std::unique_ptr<Zygote> z) {
  if (z->pidfd.valid()) syscall(SYS_pidfd_send_signal, z->pidfd.get(), SIGKILL, nullptr, 0);
  gKilled.push_back(std::move(z));
}

}  // namespace

std::unique_ptr<Zygote> take(const std::string& k, const spec::Spec& s) {
  auto it = pool().find(k);
  if (it == pool().end()) return nullptr;
  std::string image = imageKey(s);
  while (!it->second.empty()) {
    std::unique_ptr<Zygote> z = std::move(it->second.front());  // the oldest: the most likely ready
    it->second.pop_front();
    if (z->image == image && alive(*z) && readStatus(*z) && sameLayers(*z, s)) return z;
    killLater(std::move(z));  // another image, changed layers, or died (its setup failed, or was killed)
  }
  return nullptr;
}

void refill(const cgroup::Host& h, const spec::Options& o, const spec::Spec& s, int initFd) {
  for (auto& z : gKilled) discard(std::move(z));
  gKilled.clear();
  std::string k = key(o, s.slot), image = imageKey(s);
  Queue& q = pool()[k];
  for (auto it = q.begin(); it != q.end();) {  // made for the slot's previous image
    if ((*it)->image == image) { ++it; continue; }
    discard(std::move(*it));
    it = q.erase(it);
  }
  Failures& f = gFailures[k];
  if (f.image != image) f = Failures{image, 0};
  while (q.size() < kDepth && f.n < kMaxFailures) {
    std::unique_ptr<Zygote> z;
    Error err;
    if (!create(h, o, s, initFd, z, err)) {
      f.n++;
      return;
    }
    f.n = 0;
    q.push_back(std::move(z));
  }
}

void discard(std::unique_ptr<Zygote> z) {
  if (!z) return;
  if (z->pidfd.valid()) {
    syscall(SYS_pidfd_send_signal, z->pidfd.get(), SIGKILL, nullptr, 0);
    siginfo_t si;
    syscall(SYS_waitid, P_PIDFD, z->pidfd.get(), &si, WEXITED, nullptr);
  }
  if (z->sync.valid()) drainSocket(z->sync);
  ns::releaseLater(std::move(z->mntns));  // its mounts are torn down off this thread
  Error ignored;
  cgroup::remove(z->group, ignored);  // the stack is unmapped by ~Zygote, after the child is gone
}

int closeAll() {
  int n = 0;
  for (auto& z : gKilled) discard(std::move(z));
  gKilled.clear();
  for (auto& [k, q] : pool())
    while (!q.empty()) {
      std::unique_ptr<Zygote> z = std::move(q.front());
      q.pop_front();
      discard(std::move(z));
      n++;
    }
  pool().clear();
  return n;
}

std::set<std::string> groupDirs() {
  std::set<std::string> dirs;
  for (const auto& [k, q] : pool())
    for (const auto& z : q) dirs.insert(z->group.dirs.begin(), z->group.dirs.end());
  return dirs;
}

size_t count() {
  size_t n = 0;
  for (const auto& [k, q] : pool()) n += q.size();
  return n;
}

bool encodeJob(const spec::Spec& s, std::string& out) {
  using namespace jobmsg;
  if (s.argv.empty() || s.argv.size() + s.env.size() > kMaxStrings) return false;
  size_t offs = sizeof(Header) + (s.argv.size() + s.env.size()) * 4;
  std::string strings;
  auto add = [&](const char* p) -> uint32_t {
    uint32_t off = (uint32_t)(offs + strings.size());
    strings.append(p);
    strings.push_back('\0');
    return off;
  };
  out.assign(offs, '\0');
  size_t k = 0;
  for (const auto* list : {&s.argv, &s.env})
    for (const auto& str : *list) {
      uint32_t off = add(str.c_str());
      memcpy(&out[sizeof(Header) + 4 * k++], &off, 4);
    }
  Header h{kMagic, 0, (uint32_t)s.argv.size(), (uint32_t)s.env.size(), add(s.hostname.c_str())};
  out += strings;
  h.size = (uint32_t)out.size();
  memcpy(&out[0], &h, sizeof h);
  return out.size() <= kMaxBytes;
}

}  // namespace sbx::zygote
