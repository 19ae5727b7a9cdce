// cgroup v1: one directory per hierarchy (memory, pids, cpu, cpuacct, freezer, devices); join by writing the
// pid to each cgroup.procs; kill = freeze, SIGKILL every member, thaw, until empty.
#include <mutex>
#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <map>
#include <set>

#include "cgroup.h"

namespace sbx::cgroup::v1 {
namespace {

bool mkdirP(const std::string& base, const std::string& rel, Error& err) {
  std::string p = base;
  size_t start = 0;
  while (start <= rel.size()) {
    size_t end = rel.find('/', start);
    if (end == std::string::npos) end = rel.size();
    p += "/" + rel.substr(start, end - start);
    if (mkdir(p.c_str(), 0755) != 0 && errno != EEXIST) return fail(err, "cgroup-create", "mkdir", p.c_str(), errno);
    start = end + 1;
  }
  return true;
}

// Ordered unique hierarchy mount points (cpu and cpuacct may share one).
std::vector<std::string> mounts(const Host& h) {
  std::vector<std::string> out;
  for (const auto& [ctrl, mnt] : h.v1) {
    bool seen = false;
    for (const auto& m : out) seen |= m == mnt;
    if (!seen) out.push_back(mnt);
  }
  return out;
}

void sleepUs(long us) {
  struct timespec ts = {0, us * 1000};
  nanosleep(&ts, nullptr);
}

bool waitFrozen(const std::string& freezer) {
  for (int i = 0; i < 1000; i++) {
    std::string s;
    if (!readFile(freezer + "/freezer.state", s)) return false;
    if (s.rfind("FROZEN", 0) == 0) return true;
    sleepUs(100);
  }
  return false;
}

std::string controllerDir(const Host& h, const char* ctrl, const std::string& rel) {
  auto it = h.v1.find(ctrl);
  return it == h.v1.end() ? std::string() : it->second + "/" + rel;
}

}  // namespace

// Joining: the setup child writes "0" to <dir>/tasks itself. A write of a pid (or to cgroup.procs)
// takes the global cgroup_threadgroup_rwsem for writing, which waits for an RCU grace period
// (5-15 ms here, on Node's main thread); a task moving itself by writing 0 to `tasks` skips that
// lock (kernel/cgroup/cgroup.c cgroup_procs_write_start). The child is single-threaded, so moving
// the thread moves the process, and it joins before it runs anything of the job.
void plan(const Host& h, const std::string& parent, const std::string& id, Group& g) {
  g.v2 = false;
  std::string rel = parent + "/" + id;
  std::string devMnt = h.v1Devices ? h.v1.at("devices") : std::string();
  bool devShared = false;  // devices co-mounted with another controller: always joined
  for (const auto& [ctrl, mnt] : h.v1) devShared |= ctrl != "devices" && mnt == devMnt;
  for (const auto& m : mounts(h))
    if (g.denyDevices || devShared || m != devMnt) g.dirs.push_back(m + "/" + rel);
  g.devices = g.denyDevices ? controllerDir(h, "devices", rel) : std::string();
  g.memory = controllerDir(h, "memory", rel);
  g.pids = controllerDir(h, "pids", rel);
  g.cpu = controllerDir(h, "cpu", rel);
  g.cpuacct = controllerDir(h, "cpuacct", rel);
  g.freezer = controllerDir(h, "freezer", rel);
}

// P17: deny every device, then allow the few of the job's /dev (the child joins after this).
// `denyFirst` false: the group denies all already (prepareParent() wrote "a").
bool writeDevices(const std::string& dir, Error& err, bool denyFirst) {
  if (dir.empty()) return true;
  if (denyFirst) RETURN_ON_FAILURE(writeFile(dir + "/devices.deny", "a", err, "cgroup-devices"));
  for (const DevRule& r : kAllowedDevices) {
    std::string rule = "c " + std::to_string(r.major) + ":" + (r.minor < 0 ? std::string("*") : std::to_string(r.minor)) + " rwm";
    RETURN_ON_FAILURE(writeFile(dir + "/devices.allow", rule, err, "cgroup-devices"));
  }
  return true;
}

bool limitParent(const Host& h, const std::string& parent, uint64_t memoryBytes, uint64_t pids, Error& err) {
  for (const auto& m : mounts(h)) RETURN_ON_FAILURE(mkdirP(m, parent, err));
  if (memoryBytes) {
    std::string dir = controllerDir(h, "memory", parent), b = std::to_string(memoryBytes);
    // memory <= memory+swap at every step: lower memory first, raise memsw first.
    Error first;
    if (!writeFile(dir + "/memory.limit_in_bytes", b, first, "cgroup-parent")) {
      if (!h.memsw) return (err = first, false);
      RETURN_ON_FAILURE(writeFile(dir + "/memory.memsw.limit_in_bytes", b, err, "cgroup-parent"));
      RETURN_ON_FAILURE(writeFile(dir + "/memory.limit_in_bytes", b, err, "cgroup-parent"));
    }
    if (h.memsw) RETURN_ON_FAILURE(writeFile(dir + "/memory.memsw.limit_in_bytes", b, err, "cgroup-parent"));
  }
  if (pids) RETURN_ON_FAILURE(writeFile(controllerDir(h, "pids", parent) + "/pids.max", std::to_string(pids), err, "cgroup-parent"));
  return true;
}

namespace {

// mkdir the job's directory; if the parent vanished (removed behind our back), recreate it once.
bool makeJobDir(const Host& h, const std::string& parent, const std::string& dir, Error& err) {
  if (mkdir(dir.c_str(), 0755) == 0) return true;
  if (errno == ENOENT) {
    for (const auto& m : mounts(h)) RETURN_ON_FAILURE(mkdirP(m, parent, err));
    if (mkdir(dir.c_str(), 0755) == 0) return true;
  }
  return fail(err, "cgroup-create", "mkdir", dir.c_str(), errno);
}

// What every job's group gets the same is written once, on the parent: v1 copies it into a group
// when the group is made. memory.oom_control 0 (OOM-kill, don't hang: oom_kill_disable is copied
// from the parent) and, when the devices hierarchy is a separate one, the P17 allow-list (devices.deny
// "a", then one devices.allow line each: the new group copies the parent's list and default). Each
// setup saves 10 opens and writes. The kernel refuses "a" on a group with children (EINVAL): a parent
// still holding groups (e.g. ones a sweep could not remove) does not carry the list, and every job
// writes its own as before. Identified by inode (createDirs() checks each group's parent).
struct ParentSettings {
  uint64_t memoryIno = 0, devicesIno = 0;  // the directories as prepared (0: no such hierarchy)
  bool devices = false;                    // the devices parent carries the allow-list
};

std::string devicesParent(const Host& h, const std::string& parent) {
  if (!h.v1Devices) return "";
  const std::string& mnt = h.v1.at("devices");
  for (const auto& [ctrl, m] : h.v1)
    if (ctrl != "devices" && m == mnt) return "";  // co-mounted: every job joins it, list or not
  return mnt + "/" + parent;
}

// devices.deny "a" on a parent. Groups just removed (e.g. by the janitor's sweep) still count as
// children until the kernel has taken them offline, after an RCU grace period (5-15 ms here,
// longer on a loaded host): wait for that, up to a second, once per parent; a parent that still has
// group directories is refused at once.
bool denyAll(const std::string& dir, Error& err) {
  for (int i = 0; i < 1000; i++) {
    if (writeFile(dir + "/devices.deny", "a", err, "cgroup-parent")) return true;
    if (err.err != EINVAL || !subdirs(dir).empty()) return false;
    sleepUs(1000);
  }
  return false;
}

bool prepareParent(const Host& h, const std::string& parent, ParentSettings& s, Error& err) {
  for (const auto& m : mounts(h)) RETURN_ON_FAILURE(mkdirP(m, parent, err));
  s = ParentSettings{};
  if (h.v1.count("memory")) {
    std::string dir = h.v1.at("memory") + "/" + parent;
    RETURN_ON_FAILURE(writeFile(dir + "/memory.oom_control", "0", err, "cgroup-parent"));
    s.memoryIno = inodeOf(dir);
  }
  std::string dev = devicesParent(h, parent);
  if (dev.empty()) return true;
  s.devicesIno = inodeOf(dev);
  Error refused;
  if (!denyAll(dev, refused)) return true;  // it holds groups
  s.devices = writeDevices(dev, refused, false);
  // Half a list would refuse the jobs' own lines: back to allowing all (no children: it cannot fail).
  return s.devices || writeFile(dev + "/devices.allow", "a", err, "cgroup-parent");
}

}  // namespace

// The directories, with the device allow-list and memory.oom_control 0 (the same for every job:
// from the parent, see prepareParent(), else written here); no other limits.
bool createDirs(const Host& h, const std::string& parent, Group& g, Error& err) {
  static std::map<std::string, ParentSettings> prepared;
  static std::mutex mu;  // Node's thread and the pooled setups' maker (zygote.cc)
  ParentSettings s;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = prepared.find(parent);
    if (it == prepared.end()) {
      RETURN_ON_FAILURE(prepareParent(h, parent, s, err));
      it = prepared.emplace(parent, s).first;
    }
    s = it->second;
  }
  for (size_t i = 0; i < g.dirs.size(); i++) {
    if (makeJobDir(h, parent, g.dirs[i], err)) continue;
    g.dirs.resize(i);  // never remove a directory we did not create (EEXIST)
    Error ignored;
    remove(g, ignored);  // clears g.dirs
    return false;
  }
  // The groups copied the settings only if made in the very directories prepared: a parent removed
  // and made again since (by anyone, or by makeJobDir()) carries none. Then this group writes its
  // own, and the next one prepares the new parent.
  bool memoryCopied = g.memory.empty() || (s.memoryIno && inodeOf(g.memory + "/..") == s.memoryIno);
  bool devicesParentSame = g.devices.empty() || (s.devicesIno && inodeOf(g.devices + "/..") == s.devicesIno);
  if (!memoryCopied || !devicesParentSame) {
    std::lock_guard<std::mutex> lock(mu);
    prepared.erase(parent);
  }
  bool ok = memoryCopied || writeFile(g.memory + "/memory.oom_control", "0", err, "cgroup-memory");
  if (ok && !(devicesParentSame && s.devices)) ok = writeDevices(g.devices, err, true);
  if (ok) return true;
  Error ignored;
  remove(g, ignored);
  return false;
}

bool writeLimits(const Host& h, const spec::Limits& l, const Group& g, Error& err) {
  return writeMemory(false, g.memory, l.memoryBytes, h.memsw, err) && writePids(false, g.pids, l.pids, err) &&
         writeCpu(false, g.cpu, l.cpus, err);
}

bool changeLimits(const Host& h, const spec::Limits& from, const spec::Limits& to, const Group& g, Error& err) {
  if (to.memoryBytes != from.memoryBytes) {
    std::string b = std::to_string(to.memoryBytes);
    bool raise = to.memoryBytes > from.memoryBytes;  // raise memsw first, lower memory first
    if (h.memsw && raise) RETURN_ON_FAILURE(writeFile(g.memory + "/memory.memsw.limit_in_bytes", b, err, "cgroup-memory"));
    RETURN_ON_FAILURE(writeFile(g.memory + "/memory.limit_in_bytes", b, err, "cgroup-memory"));
    if (h.memsw && !raise) RETURN_ON_FAILURE(writeFile(g.memory + "/memory.memsw.limit_in_bytes", b, err, "cgroup-memory"));
    RETURN_ON_FAILURE(writeTcpMemoryV1(g.memory, to.memoryBytes, err));
  }
  if (to.pids != from.pids) RETURN_ON_FAILURE(writePids(false, g.pids, to.pids, err));
  if (to.cpus != from.cpus) RETURN_ON_FAILURE(writeCpu(false, g.cpu, to.cpus, err));
  return true;
}

bool create(const Host& h, const std::string& parent, const spec::Limits& l, Group& g, Error& err) {
  RETURN_ON_FAILURE(createDirs(h, parent, g, err));
  if (writeLimits(h, l, g, err)) return true;
  Error ignored;
  remove(g, ignored);
  return false;
}

// rename(2) each directory of `from` (a pooled group, its tasks inside) to the one of `to` (same
// hierarchies, same parent: v1 allows renames within a parent). The tasks stay in their groups.
// On failure the renamed ones are renamed back.
bool rename(Group& from, Group& to, Error& err) {
  if (from.dirs.size() != to.dirs.size()) return fail(err, "cgroup-create", "rename", "", EINVAL);
  for (size_t i = 0; i < from.dirs.size(); i++) {
    if (::rename(from.dirs[i].c_str(), to.dirs[i].c_str()) == 0) continue;
    fail(err, "cgroup-create", "rename", to.dirs[i].c_str(), errno);
    while (i-- > 0) ::rename(to.dirs[i].c_str(), from.dirs[i].c_str());
    return false;
  }
  from.dirs.clear();
  return true;
}

int killAll(const Group& g) {
  std::set<int> killed;  // distinct processes: a dying one may be signalled again next round
  Error ignored;
  for (int round = 0; round < 100; round++) {
    std::set<int> pids;
    for (const auto& d : g.dirs)
      for (int p : readProcs(d)) pids.insert(p);
    if (pids.empty()) break;
    bool frozen = !g.freezer.empty() && writeFile(g.freezer + "/freezer.state", "FROZEN", ignored, "kill") &&
                  waitFrozen(g.freezer);
    // Re-read while frozen: nothing can fork or exit now, so the pids are stable (no reuse race).
    if (frozen) {
      pids.clear();
      for (int p : readProcs(g.freezer)) pids.insert(p);
    }
    for (int p : pids)
      if (p > 0 && kill(p, SIGKILL) == 0) killed.insert(p);
    if (!g.freezer.empty()) writeFile(g.freezer + "/freezer.state", "THAWED", ignored, "kill");
    sleepUs(round < 10 ? 100 : 1000);
  }
  return (int)killed.size();
}

int sweep(const Host& h, const std::string& parent, const std::set<std::string>& keep, int& processes, int& left) {
  std::set<std::string> names;
  for (const auto& m : mounts(h))
    for (auto& name : subdirs(m + "/" + parent)) names.insert(std::move(name));
  int removed = 0;
  for (const auto& name : names) {
    Group g;
    std::string rel = parent + "/" + name;
    bool live = false;
    for (const auto& m : mounts(h)) {
      live |= keep.count(m + "/" + rel) > 0;
      if (access((m + "/" + rel).c_str(), F_OK) == 0) g.dirs.push_back(m + "/" + rel);
    }
    if (live) continue;  // a job this process runs
    g.freezer = controllerDir(h, "freezer", rel);
    if (access(g.freezer.c_str(), F_OK) != 0) g.freezer.clear();
    processes += v1::killAll(g);
    Error ignored;
    if (remove(g, ignored)) removed++;
    else left++;
  }
  return removed;
}

}  // namespace sbx::cgroup::v1
