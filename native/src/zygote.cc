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

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "background.h"
#include "threads.h"
#include "host_load.h"
#include "input_files_pack.h"
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
struct Failures {
  std::string image;  // counted for this image + config of the key's slot (reset when it changes)
  int n = 0;          // consecutive creation failures
};

// What refill() asks the maker thread for: the slot's next setups, for this spec.
struct Request {
  const cgroup::Host* host;
  spec::Options options;
  spec::Spec spec;
  std::string config;  // init_config::build(spec, options)
  int initFd;
};

// The setups are made on a thread of their own (the maker), so their cgroups, layer clones and
// clone3 (~0.7 ms a setup) cost Node's thread nothing. Everything below is guarded by `mu`, but
// `failures`, which only the maker uses. The maker thread lives as long as the process: the setups
// it clones die with it (PR_SET_PDEATHSIG is per creating thread).
struct Maker {
  std::mutex mu;
  std::condition_variable wake, idle;
  std::map<std::string, Queue> pool;             // ready or still preparing, per key
  std::vector<std::unique_ptr<Zygote>> killed;   // killed by take(), removed by the maker
  std::deque<Request> requests;                  // at most one per key (a newer one replaces it)
  std::set<std::string> inflight;                // group dirs of setups being made (sweep() spares them)
  std::set<std::string> dropping;                // group dirs of setups taken out to be discarded, until they are
  bool started = false, busy = false;
  uint64_t made = 0;                             // setups begun: the newest is pool-<pid>-<made>
  uint64_t generation = 0;                       // closeAll() bumps it: setups made before are dropped
  std::map<std::string, Failures> failures;
};
Maker& maker() {
  static auto* m = new Maker();  // never destroyed: the maker thread outlives static teardown
  return *m;
}

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

// Make one setup (maker thread). `planned`: its group dirs, listed in Maker::inflight until the
// caller has put the setup in the pool (or it failed).
bool create(const cgroup::Host& h, const spec::Options& o, const spec::Spec& s, const std::string& config, int initFd,
            std::unique_ptr<Zygote>& out, std::vector<std::string>& planned, Error& err) {
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
  {  // numbered and listed at once: groupDirs() never counts a setup it does not list
    std::lock_guard<std::mutex> lock(maker().mu);
    const std::string name = "pool-" + std::to_string(getpid()) + "-" + std::to_string(++maker().made);
    cgroup::plan(h, o.cgroupParent, name, o.devicesCgroup, z->group);
    planned = z->group.dirs;
    maker().inflight.insert(planned.begin(), planned.end());
  }
  // The same group, limits and device rules as a direct launch makes. v1: the child joins it itself
  // (joinFiles, below); v2: clone3 puts the child in it (CLONE_INTO_CGROUP), so it exists first.
  if (z->group.v2) {
    RETURN_ON_FAILURE(cgroup::create(h, o.cgroupParent, s.limits, z->group, err));
  } else {
    RETURN_ON_FAILURE(cgroup::v1::createDirs(h, o.cgroupParent, z->group, err));
  }
  struct Undo {
    cgroup::Group* g;
    ~Undo() { if (g) { Error e; cgroup::remove(*g, e); } }
  } undo{&z->group};
  if (!z->group.v2) RETURN_ON_FAILURE(cgroup::v1::writeLimits(h, s.limits, z->group, err));
  z->limits = s.limits;
  z->config = config;
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
  RETURN_ON_FAILURE(ns::takeOrMakeNetns(z->netns, err));
  static char kName[] = "sbx-zygote";
  z->argv[0] = kName;
  // The setup copies the base namespace (two mounts), not this process's (without one, it copies
  // this process's).
  z->args = child::Args{childSync.get(), devnull.get(), devnull.get(), devnull.get(), initFd, z->ops.data(), z->ops.size(),
                        "", 0, z->argv, z->envp, z->joinPtrs.data(), z->joinPtrs.size(), usernsFd, z->netns.get(), nullptr,
                        true, z->joinFds.data(), -1, mnt::baseNamespace(o)};
  child::keepOnly(z->args, z->keptFds);
  z->stack = ns::mapStack(kStackSize);
  if (!z->stack) return fail(err, "pool", "mmap", "stack", errno);
  ns::Clone c;
  RETURN_ON_FAILURE(ns::cloneChild(ns::kCloneFlags, z->group.v2 ? z->group.dirFd.get() : -1, z->stack, kStackSize, child::main,
                                   &z->args, c, err));
  z->pid = c.pid;
  z->pidfd = std::move(c.pidfd);
  // Its sbx-init reads this first, and drops every privilege with it before it reports ready.
  if (send(z->sync.get(), z->config.data(), z->config.size(), MSG_NOSIGNAL) != (ssize_t)z->config.size()) {
    int e = errno;
    syscall(SYS_pidfd_send_signal, z->pidfd.get(), SIGKILL, nullptr, 0);
    siginfo_t si;
    syscall(SYS_waitid, P_PIDFD, z->pidfd.get(), &si, WEXITED, nullptr);
    return fail(err, "pool", "send", "init config", e);
  }
  undo.g = nullptr;
  out = std::move(z);
  return true;
}

}  // namespace

Zygote::~Zygote() {
  if (stack) ns::unmapStack(stack, kStackSize);
}

bool usable(const cgroup::Host& h, const spec::Options& o) {
  return o.pool && (h.mode == cgroup::Mode::kV1 || h.mode == cgroup::Mode::kV2) && mnt::pooledUsable(o);
}

std::string key(const spec::Options& o, uint32_t slot) {
  return o.stateDir + "\n" + o.cgroupV2Root + "\n" + o.cgroupParent + "\n" + (o.userns ? "u" : "-") + std::to_string(o.uidBase) + "\n" +
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

// Killed now (off the critical path: reaped and its groups removed by the maker). Under `mu`.
void killLater(std::unique_ptr<Zygote> z) {
  if (z->pidfd.valid()) syscall(SYS_pidfd_send_signal, z->pidfd.get(), SIGKILL, nullptr, 0);
  maker().killed.push_back(std::move(z));
}

}  // namespace

std::unique_ptr<Zygote> take(const std::string& k, const spec::Spec& s, const std::string& config) {
  Maker& m = maker();
  std::lock_guard<std::mutex> lock(m.mu);
  auto it = m.pool.find(k);
  if (it == m.pool.end()) return nullptr;
  std::string image = imageKey(s);
  while (!it->second.empty()) {
    std::unique_ptr<Zygote> z = std::move(it->second.front());  // the oldest: the most likely ready
    it->second.pop_front();
    if (z->image == image && z->config == config && alive(*z) && readStatus(*z) && sameLayers(*z, s)) return z;
    killLater(std::move(z));  // another image or config, changed layers, or died (its setup failed, or was killed)
  }
  return nullptr;
}

namespace {

// Discard setups taken out of the pool (under `mu`, their dirs were put in Maker::dropping): listed
// by groupDirs() until their processes are reaped and their groups removed.
void discardListed(std::vector<std::unique_ptr<Zygote>>& zs) {
  Maker& m = maker();
  std::vector<std::string> dirs;
  for (auto& z : zs) {
    dirs.insert(dirs.end(), z->group.dirs.begin(), z->group.dirs.end());
    discard(std::move(z));
  }
  std::lock_guard<std::mutex> lock(m.mu);
  for (const auto& d : dirs) m.dropping.erase(d);
}

// Under `mu`: `z` leaves the pool to be discarded; its groups stay listed until discardListed().
void markDropping(const Zygote& z) { maker().dropping.insert(z.group.dirs.begin(), z.group.dirs.end()); }

// Maker thread: remove what take() killed and the key's setups made for another image or config,
// then make the key's missing ones for this spec.
void refillNow(const Request& r) {
  Maker& m = maker();
  const std::string k = key(r.options, r.spec.slot), image = imageKey(r.spec);
  const std::string& config = r.config;
  std::vector<std::unique_ptr<Zygote>> drop;
  uint64_t generation;
  {
    std::lock_guard<std::mutex> lock(m.mu);
    generation = m.generation;
    for (auto& z : m.killed) drop.push_back(std::move(z));
    m.killed.clear();
    Queue& q = m.pool[k];
    for (auto it = q.begin(); it != q.end();) {  // made for the slot's previous image or config
      if ((*it)->image == image && (*it)->config == config) { ++it; continue; }
      drop.push_back(std::move(*it));
      it = q.erase(it);
    }
    for (const auto& z : drop) markDropping(*z);
  }
  discardListed(drop);
  Failures& f = m.failures[k];
  if (f.image != image + config) f = Failures{image + config, 0};
  while (f.n < kMaxFailures) {
    {
      std::lock_guard<std::mutex> lock(m.mu);
      if (m.generation != generation || m.pool[k].size() >= kDepth) return;
    }
    // No CPU to spare: made now, it would only slow the running jobs; the slot's next launch goes
    // direct, and the next job's end asks again.
    if (r.options.poolMinIdle > 0 && host_load::idleShare() < r.options.poolMinIdle) return;
    std::unique_ptr<Zygote> z;
    std::vector<std::string> planned;
    Error err;
    bool ok = create(*r.host, r.options, r.spec, r.config, r.initFd, z, planned, err);
    std::vector<std::unique_ptr<Zygote>> stale;
    {
      std::lock_guard<std::mutex> lock(m.mu);
      for (const auto& d : planned) m.inflight.erase(d);
      if (ok && m.generation == generation) {
        m.pool[k].push_back(std::move(z));
      } else if (ok) {  // closeAll() ran meanwhile
        markDropping(*z);
        stale.push_back(std::move(z));
      }
    }
    if (!stale.empty()) return discardListed(stale);
    f.n = ok ? 0 : f.n + 1;
  }
}

void makerLoop() {
  background::lowerThisThread();
  Maker& m = maker();
  std::unique_lock<std::mutex> lock(m.mu);
  for (;;) {
    m.wake.wait(lock, [&] { return !m.requests.empty(); });
    Request r = std::move(m.requests.front());
    m.requests.pop_front();
    m.busy = true;
    lock.unlock();
    refillNow(r);
    lock.lock();
    m.busy = false;
    m.idle.notify_all();
  }
}

}  // namespace

void refill(const cgroup::Host& h, const spec::Options& o, const spec::Spec& s, const std::string& config, int initFd) {
  Maker& m = maker();
  std::lock_guard<std::mutex> lock(m.mu);
  if (!m.started) {
    // No thread for it (the host's pids limit): nothing is made ahead; the job's launch sets itself up.
    if (!threads::startDetached(makerLoop)) return;
    m.started = true;
  }
  Request r{&h, o, s, config, initFd};
  const std::string k = key(o, s.slot);
  for (auto& pending : m.requests)
    if (key(pending.options, pending.spec.slot) == k) return void(pending = std::move(r));
  m.requests.push_back(std::move(r));
  m.wake.notify_one();
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
  Maker& m = maker();
  std::vector<std::unique_ptr<Zygote>> all;
  int n = 0;
  {
    std::unique_lock<std::mutex> lock(m.mu);
    m.requests.clear();
    m.generation++;
    m.idle.wait(lock, [&] { return !m.busy; });  // a setup being made is dropped by the maker itself
    for (auto& z : m.killed) all.push_back(std::move(z));
    m.killed.clear();
    for (auto& [k, q] : m.pool)
      for (auto& z : q) {
        all.push_back(std::move(z));
        n++;
      }
    m.pool.clear();
    for (const auto& z : all) markDropping(*z);
  }
  discardListed(all);
  return n;
}

std::set<std::string> groupDirs(uint64_t* made) {
  Maker& m = maker();
  std::lock_guard<std::mutex> lock(m.mu);
  if (made) *made = m.made;
  std::set<std::string> dirs = m.inflight;
  dirs.insert(m.dropping.begin(), m.dropping.end());
  for (const auto& [k, q] : m.pool)
    for (const auto& z : q) dirs.insert(z->group.dirs.begin(), z->group.dirs.end());
  for (const auto& z : m.killed) dirs.insert(z->group.dirs.begin(), z->group.dirs.end());
  return dirs;
}

size_t count() {
  Maker& m = maker();
  std::lock_guard<std::mutex> lock(m.mu);
  size_t n = 0;
  for (const auto& [k, q] : m.pool) n += q.size();
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
  Header h{kMagic, 0, (uint32_t)s.argv.size(), (uint32_t)s.env.size(), input_files::hasPayload(s) ? kHasFiles : 0u};
  out += strings;
  h.size = (uint32_t)out.size();
  memcpy(&out[0], &h, sizeof h);
  return out.size() <= kMaxBytes;
}

}  // namespace sbx::zygote
