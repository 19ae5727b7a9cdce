#include "cgroup.h"

#include <mutex>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <vector>

#include "fd.h"
#include "kernel.h"

namespace sbx::cgroup {
namespace {

constexpr long kCgroup2Magic = 0x63677270;
const char* const kV1Controllers[] = {"memory", "pids", "cpu", "cpuacct", "freezer"};  // required
const char* const kV1Optional[] = {"devices"};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, sep)) out.push_back(item);
  return out;
}

bool exists(const std::string& p) { return access(p.c_str(), F_OK) == 0; }

void detectV1(Host& h) {
  std::ifstream mi("/proc/self/mountinfo");
  std::string line;
  while (std::getline(mi, line)) {
    size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    auto pre = split(line.substr(0, dash), ' ');
    auto post = split(line.substr(dash + 3), ' ');
    if (pre.size() < 5 || post.size() < 3 || post[0] != "cgroup") continue;
    for (const auto& opt : split(post[2], ','))
    {
      for (const char* c : kV1Controllers)
        if (opt == c && !h.v1.count(c)) h.v1[c] = pre[4];
      for (const char* c : kV1Optional)
        if (opt == c && !h.v1.count(c)) h.v1[c] = pre[4];
    }
  }
  h.v1Devices = h.v1.count("devices") > 0;
  for (const char* c : kV1Controllers)
    if (!h.v1.count(c)) h.missing.push_back(std::string(c) + " cgroup controller not mounted");
  if (h.v1.count("memory")) h.memsw = exists(h.v1["memory"] + "/memory.memsw.limit_in_bytes");
}

void detectV2(Host& h, const std::string& root) {
  h.v2Root = root;
  std::string ctl;
  readFile(root + "/cgroup.controllers", ctl);
  h.v2Controllers = split(ctl.substr(0, ctl.find('\n')), ' ');
  for (const char* c : {"memory", "pids", "cpu"}) {
    bool found = false;
    for (const auto& x : h.v2Controllers) found |= x == c;
    if (!found) h.missing.push_back(std::string(c) + " cgroup controller not available in " + root);
  }
  // cgroup.kill exists only in non-root groups; the kernel version tells otherwise (>= 5.14).
  h.cgroupKill = exists(root + "/cgroup.kill") || kernel::version().atLeast(5, 14);
}

Host detect(const std::string& v2Override) {
  Host h;
  if (!v2Override.empty()) {
    h.mode = Mode::kV2;
    detectV2(h, v2Override);
    return h;
  }
  struct statfs fs;
  if (statfs("/sys/fs/cgroup", &fs) == 0 && fs.f_type == kCgroup2Magic) {
    h.mode = Mode::kV2;
    detectV2(h, "/sys/fs/cgroup");
    return h;
  }
  detectV1(h);
  h.mode = h.v1.empty() ? Mode::kNone : Mode::kV1;
  if (h.mode == Mode::kNone) h.missing = {"no cgroup filesystem mounted at /sys/fs/cgroup"};
  return h;
}

}  // namespace

const Host& host(const std::string& v2RootOverride) {
  static std::map<std::string, Host> cache;  // entries never change or go: references stay valid
  static std::mutex mu;  // Node's thread and the pooled setups' maker (zygote.cc)
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(v2RootOverride);
  if (it == cache.end()) it = cache.emplace(v2RootOverride, detect(v2RootOverride)).first;
  return it->second;
}

bool writeFile(const std::string& path, const std::string& value, Error& err, const char* stage) {
  Fd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) return fail(err, stage, "open", path.c_str(), errno);
  // EINTR: v1 memory.limit_in_bytes (mem_cgroup_resize_max) gives up at once when the writer has
  // a signal pending, e.g. the SIGCHLD of another job's pid 1 that just exited (seen under
  // concurrent launches). Nothing was changed then: write again.
  ssize_t n;
  int tries = 0;
  do n = write(fd.get(), value.data(), value.size());
  while (n < 0 && errno == EINTR && ++tries < 100);
  if (n != (ssize_t)value.size()) return fail(err, stage, "write", path.c_str(), n < 0 ? errno : EIO);
  return true;
}

bool readFile(const std::string& path, std::string& out) {
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) return false;
  char buf[4096];
  out.clear();
  ssize_t n;
  while ((n = read(fd.get(), buf, sizeof buf)) > 0) out.append(buf, (size_t)n);
  return n == 0;
}

uint64_t readU64(const std::string& path) {
  std::string s;
  if (!readFile(path, s)) return 0;
  return strtoull(s.c_str(), nullptr, 10);
}

uint64_t readKey(const std::string& path, const char* key) {
  uint64_t v = 0;
  readKeys(path, {key}, &v);
  return v;
}

void readKeys(const std::string& path, std::initializer_list<const char*> keys, uint64_t* values) {
  for (size_t i = 0; i < keys.size(); i++) values[i] = 0;
  std::string s;
  if (!readFile(path, s)) return;
  for (const auto& line : split(s, '\n')) {
    size_t i = 0;
    for (const char* key : keys) {
      size_t klen = strlen(key);
      if (line.compare(0, klen, key) == 0 && line.size() > klen && line[klen] == ' ')
        values[i] = strtoull(line.c_str() + klen + 1, nullptr, 10);
      i++;
    }
  }
}

std::vector<int> readProcs(const std::string& dir) {
  std::vector<int> pids;
  std::string s;
  if (!readFile(dir + "/cgroup.procs", s)) return pids;
  for (const auto& line : split(s, '\n'))
    if (!line.empty()) pids.push_back(atoi(line.c_str()));
  return pids;
}

bool writeMemory(bool v2, const std::string& dir, uint64_t bytes, bool memsw, Error& err) {
  std::string b = std::to_string(bytes);
  if (v2) {
    RETURN_ON_FAILURE(writeFile(dir + "/memory.max", b, err, "cgroup-memory"));
    if (exists(dir + "/memory.swap.max")) RETURN_ON_FAILURE(writeFile(dir + "/memory.swap.max", "0", err, "cgroup-memory"));
    return writeFile(dir + "/memory.oom.group", "1", err, "cgroup-memory");
  }
  RETURN_ON_FAILURE(writeFile(dir + "/memory.limit_in_bytes", b, err, "cgroup-memory"));
  // Same value for memory+swap, else swap defeats the limit (runc events.bats "events oom").
  // memory.oom_control 0 (OOM-kill, don't hang) comes from the parent (cgroup_v1.cc createDirs).
  if (memsw) RETURN_ON_FAILURE(writeFile(dir + "/memory.memsw.limit_in_bytes", b, err, "cgroup-memory"));
  return writeTcpMemoryV1(dir, bytes, err);
}

// v1 charges a group's TCP socket buffers only once its memory.kmem.tcp.limit_in_bytes is set, and
// apart from memory.limit_in_bytes (v2 counts them in memory.current): unset, a job of 64 MiB held
// 2.7 GiB of loopback TCP buffers and took the host past its tcp_mem. The same bound as the memory
// limit. A kernel without kmem accounting has no such file: nothing to set.
bool writeTcpMemoryV1(const std::string& dir, uint64_t bytes, Error& err) {
  const std::string file = dir + "/memory.kmem.tcp.limit_in_bytes";
  return !exists(file) || writeFile(file, std::to_string(bytes), err, "cgroup-memory");
}

bool writePids(bool v2, const std::string& dir, uint64_t pids, Error& err) {
  (void)v2;  // same file on both
  return writeFile(dir + "/pids.max", std::to_string(pids), err, "cgroup-pids");
}

bool writeCpu(bool v2, const std::string& dir, double cpus, Error& err) {
  const uint64_t period = 100000;
  uint64_t quota = (uint64_t)(cpus * (double)period);
  if (quota < 1000) quota = 1000;
  if (v2) return writeFile(dir + "/cpu.max", std::to_string(quota) + " " + std::to_string(period), err, "cgroup-cpu");
  // v1: a new group's cpu.cfs_period_us is the kernel's default, 100 ms (not copied from the
  // parent; Documentation/scheduler/sched-bwc.rst), the period the quota is for.
  return writeFile(dir + "/cpu.cfs_quota_us", std::to_string(quota), err, "cgroup-cpu");
}

bool writeCpuShares(const Group& g, uint32_t shares, Error& err) {
  if (shares < 2) shares = 2;
  if (shares > 262144) shares = 262144;
  if (!g.v2) return writeFile(g.cpu + "/cpu.shares", std::to_string(shares), err, "cgroup-cpu-weight");
  uint64_t weight = ((uint64_t)shares * 100 + kCpuSharesDefault / 2) / kCpuSharesDefault;
  if (weight < 1) weight = 1;
  if (weight > 10000) weight = 10000;
  return writeFile(g.cpu + "/cpu.weight", std::to_string(weight), err, "cgroup-cpu-weight");
}

uint64_t inodeOf(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? (uint64_t)st.st_ino : 0;
}

std::vector<std::string> subdirs(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (!d) return names;
  while (struct dirent* e = readdir(d))
    if (e->d_type == DT_DIR && e->d_name[0] != '.') names.push_back(e->d_name);
  closedir(d);
  return names;
}

bool removeDir(const std::string& dir, Error& err) {
  for (int i = 0; i < 200; i++) {
    if (rmdir(dir.c_str()) == 0 || errno == ENOENT) return true;
    if (errno != EBUSY) break;
    struct timespec ts = {0, 1000000};  // a dying task can hold the group for a moment
    nanosleep(&ts, nullptr);
  }
  return fail(err, "cgroup-remove", "rmdir", dir.c_str(), errno);
}

const DevRule kAllowedDevices[8] = {{1, 3}, {1, 5}, {1, 7}, {1, 8}, {1, 9}, {5, 0}, {5, 2}, {136, -1}};

void plan(const Host& h, const std::string& parent, const std::string& id, bool denyDevices, Group& g) {
  g.denyDevices = denyDevices;
  if (h.mode == Mode::kV2) v2::plan(h, parent, id, g);
  else if (h.mode == Mode::kV1) v1::plan(h, parent, id, g);
}

namespace {
// The directories that carry the parent's limits, identified by inode: a parent removed and made
// again (by anyone, or by create() when it vanished) is a new directory without the limits.
std::vector<uint64_t> limitDirInodes(const Host& h, const std::string& parent, uint64_t memoryBytes, uint64_t pids) {
  std::vector<std::string> dirs;
  if (h.mode == Mode::kV2) dirs.push_back(h.v2Root + "/" + parent);
  if (h.mode == Mode::kV1 && memoryBytes && h.v1.count("memory")) dirs.push_back(h.v1.at("memory") + "/" + parent);
  if (h.mode == Mode::kV1 && pids && h.v1.count("pids")) dirs.push_back(h.v1.at("pids") + "/" + parent);
  std::vector<uint64_t> inodes;
  for (const auto& d : dirs) inodes.push_back(inodeOf(d));
  return inodes;
}
}  // namespace

bool limitParent(const Host& h, const std::string& parent, uint64_t memoryBytes, uint64_t pids, Error& err) {
  if (!memoryBytes && !pids) return true;
  struct Written { uint64_t memoryBytes, pids; std::vector<uint64_t> inodes; };
  static std::map<std::string, Written> written;  // key: mode + root + parent
  std::string key = (h.mode == Mode::kV2 ? "v2:" + h.v2Root + ":" : "v1:") + parent;
  auto it = written.find(key);
  if (it != written.end() && it->second.memoryBytes == memoryBytes && it->second.pids == pids &&
      it->second.inodes == limitDirInodes(h, parent, memoryBytes, pids))
    return true;
  bool ok = h.mode == Mode::kV2   ? v2::limitParent(h, parent, memoryBytes, pids, err)
            : h.mode == Mode::kV1 ? v1::limitParent(h, parent, memoryBytes, pids, err)
                                  : fail(err, "cgroup-parent", "", "/sys/fs/cgroup", ENOSYS, kHost);
  if (ok) written[key] = {memoryBytes, pids, limitDirInodes(h, parent, memoryBytes, pids)};
  return ok;
}

bool create(const Host& h, const std::string& parent, const spec::Limits& l, Group& g, Error& err) {
  if (h.mode == Mode::kV2) return v2::create(h, parent, l, g, err);
  if (h.mode == Mode::kV1) return v1::create(h, parent, l, g, err);
  return fail(err, "cgroup-create", "", "/sys/fs/cgroup", ENOSYS, kHost);
}

bool sameLimits(const spec::Limits& a, const spec::Limits& b) {
  return a.memoryBytes == b.memoryBytes && a.pids == b.pids && a.cpus == b.cpus;
}

bool changeLimits(const Host& h, const spec::Limits& from, const spec::Limits& to, const Group& g, Error& err) {
  return g.v2 ? v2::changeLimits(h, from, to, g, err) : v1::changeLimits(h, from, to, g, err);
}

std::vector<std::string> selfJoinFiles(const Group& g) {
  std::vector<std::string> out;
  if (!g.v2)
    for (const auto& d : g.dirs) out.push_back(d + "/tasks");
  return out;
}

int killAll(const Group& g) { return g.v2 ? v2::killAll(g) : v1::killAll(g); }

void readUsage(const Group& g, Usage& u) {
  if (g.v2) {
    uint64_t cpu[2];
    readKeys(g.cpu + "/cpu.stat", {"usage_usec", "throttled_usec"}, cpu);
    u.cpuNs = cpu[0] * 1000;
    u.cpuThrottledNs = cpu[1] * 1000;
    u.memoryPeak = readU64(g.memory + "/memory.peak");
    u.oomKills = readKey(g.memory + "/memory.events", "oom_kill");
    u.pidsMaxEvents = readKey(g.pids + "/pids.events", "max");
    return;
  }
  u.cpuNs = readU64(g.cpuacct + "/cpuacct.usage");
  u.memoryPeak = readU64(g.memory + "/memory.max_usage_in_bytes");
  u.oomKills = readKey(g.memory + "/memory.oom_control", "oom_kill");
  u.pidsMaxEvents = readKey(g.pids + "/pids.events", "max");
  u.cpuThrottledNs = readKey(g.cpu + "/cpu.stat", "throttled_time");
}

void readLive(const Group& g, Live& l) {
  if (g.v2) {
    l.cpuNs = readKey(g.cpu + "/cpu.stat", "usage_usec") * 1000;
    l.memoryBytes = readU64(g.memory + "/memory.current");
    l.memoryPeak = readU64(g.memory + "/memory.peak");
  } else {
    l.cpuNs = readU64(g.cpuacct + "/cpuacct.usage");
    l.memoryBytes = readU64(g.memory + "/memory.usage_in_bytes");
    l.memoryPeak = readU64(g.memory + "/memory.max_usage_in_bytes");
  }
  l.pids = readU64(g.pids + "/pids.current");
}

bool remove(Group& g, Error& err) {
  bool ok = true;
  g.dirFd.reset();
  // Fast path: normally the group is already empty (the pid namespace died with its init), and
  // one rmdir per directory is all. Only the directories it left are killed in and retried.
  std::vector<std::string> left;
  for (auto it = g.dirs.rbegin(); it != g.dirs.rend(); ++it)
    if (rmdir(it->c_str()) != 0 && errno != ENOENT) left.push_back(*it);
  if (left.empty()) {
    g.dirs.clear();
    return true;
  }
  killAll(g);
  for (const auto& dir : left) {
    Error e;
    if (!removeDir(dir, e)) {
      if (ok) err = e;
      ok = false;
    }
  }
  g.dirs.clear();
  return ok;
}

int sweep(const Host& h, const std::string& parent, const std::set<std::string>& keep, int& processes, int& left) {
  processes = 0;
  left = 0;
  if (h.mode == Mode::kV2) return v2::sweep(h, parent, keep, processes, left);
  if (h.mode == Mode::kV1) return v1::sweep(h, parent, keep, processes, left);
  return 0;
}

}  // namespace sbx::cgroup
