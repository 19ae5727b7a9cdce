#include "zygote.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
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
std::map<std::string, int> gFailures;  // consecutive creation failures per key

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

bool create(const cgroup::Host& h, const spec::Options& o, uint32_t slot, int initFd, std::unique_ptr<Zygote>& out,
            Error& err) {
  static uint64_t counter = 0;
  auto z = std::make_unique<Zygote>();
  z->key = key(o, slot);
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
  mnt::buildPrepOps(o, usernsFd, hostBase, z->arena, z->ops);
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

std::unique_ptr<Zygote> take(const std::string& k) {
  auto it = pool().find(k);
  if (it == pool().end() || it->second.empty()) return nullptr;
  std::unique_ptr<Zygote> z = std::move(it->second.front());  // the oldest: the most likely ready
  it->second.pop_front();
  if (alive(*z) && readStatus(*z)) return z;
  discard(std::move(z));  // died (its setup failed, or someone killed it): the direct path
  return nullptr;
}

void refill(const cgroup::Host& h, const spec::Options& o, uint32_t slot, int initFd) {
  std::string k = key(o, slot);
  Queue& q = pool()[k];
  while (q.size() < kDepth && gFailures[k] < kMaxFailures) {
    std::unique_ptr<Zygote> z;
    Error err;
    if (!create(h, o, slot, initFd, z, err)) {
      gFailures[k]++;
      return;
    }
    gFailures[k] = 0;
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
  Error ignored;
  cgroup::remove(z->group, ignored);  // the stack is unmapped by ~Zygote, after the child is gone
}

int closeAll() {
  int n = 0;
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

bool encodeJob(const std::vector<mnt::Op>& ops, const spec::Spec& s, std::string& out) {
  using namespace jobmsg;
  if (ops.size() > kMaxOps || s.argv.empty() || s.argv.size() + s.env.size() > kMaxStrings) return false;
  size_t recs = sizeof(Header) + ops.size() * sizeof(OpRec);
  size_t offs = recs + (s.argv.size() + s.env.size()) * 4;
  std::string strings;
  auto add = [&](const char* p) -> uint32_t {
    if (!p) return kNone;
    uint32_t off = (uint32_t)(offs + strings.size());
    strings.append(p);
    strings.push_back('\0');
    return off;
  };
  out.assign(offs, '\0');
  for (size_t i = 0; i < ops.size(); i++) {
    const mnt::Op& o = ops[i];
    OpRec r{};
    r.kind = (uint8_t)o.kind;
    r.optional = o.optional;
    r.userns = o.fd >= 0;
    r.mode = o.mode;
    r.uid = o.uid;
    r.gid = o.gid;
    r.flags = o.flags;
    r.src = add(o.src);
    r.dst = add(o.dst);
    r.fstype = add(o.fstype);
    r.data = add(o.data);
    r.stage = add(o.stage);
    memcpy(&out[sizeof(Header) + i * sizeof r], &r, sizeof r);
  }
  size_t k = 0;
  for (const auto* list : {&s.argv, &s.env})
    for (const auto& str : *list) {
      uint32_t off = add(str.c_str());
      memcpy(&out[recs + 4 * k++], &off, 4);
    }
  Header h{kMagic, 0, (uint32_t)ops.size(), (uint32_t)s.argv.size(), (uint32_t)s.env.size(), add(s.hostname.c_str())};
  out += strings;
  h.size = (uint32_t)out.size();
  memcpy(&out[0], &h, sizeof h);
  return out.size() <= kMaxBytes;
}

}  // namespace sbx::zygote
