// cgroup v2: one directory; the child is created inside it (clone3 CLONE_INTO_CGROUP), killed with
// cgroup.kill (>= 5.14) or freeze + SIGKILL + thaw, and removed with rmdir.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <set>

#include "cgroup.h"

namespace sbx::cgroup::v2 {
namespace {

bool has(const Host& h, const char* c) {
  for (const auto& x : h.v2Controllers)
    if (x == c) return true;
  return false;
}

std::string enableList(const Host& h) {
  std::string s;
  for (const char* c : {"memory", "pids", "cpu"})
    if (has(h, c)) s += (s.empty() ? "+" : " +") + std::string(c);
  return s;
}

// mkdir -p root/parent, enabling the controllers in every ancestor's subtree_control.
bool prepareParent(const Host& h, const std::string& parent, Error& err) {
  std::string list = enableList(h);
  std::string p = h.v2Root;
  size_t start = 0;
  while (start <= parent.size()) {
    if (!list.empty()) RETURN_ON_FAILURE(writeFile(p + "/cgroup.subtree_control", list, err, "cgroup-create"));
    size_t end = parent.find('/', start);
    if (end == std::string::npos) end = parent.size();
    p += "/" + parent.substr(start, end - start);
    if (mkdir(p.c_str(), 0755) != 0 && errno != EEXIST) return fail(err, "cgroup-create", "mkdir", p.c_str(), errno);
    start = end + 1;
  }
  return list.empty() || writeFile(p + "/cgroup.subtree_control", list, err, "cgroup-create");
}

void sleepUs(long us) {
  struct timespec ts = {0, us * 1000};
  nanosleep(&ts, nullptr);
}

}  // namespace

void plan(const Host& h, const std::string& parent, const std::string& id, Group& g) {
  g.v2 = true;
  std::string dir = h.v2Root + "/" + parent + "/" + id;
  g.dirs.push_back(dir);
  g.memory = g.pids = g.cpu = g.cpuacct = g.freezer = dir;
}

bool create(const Host& h, const std::string& parent, const spec::Limits& l, Group& g, Error& err) {
  static std::set<std::string> preparedParents;  // subtree_control written once per parent
  if (!preparedParents.count(parent)) {
    RETURN_ON_FAILURE(prepareParent(h, parent, err));
    preparedParents.insert(parent);
  }
  const std::string& dir = g.dirs[0];
  bool made = mkdir(dir.c_str(), 0755) == 0;
  if (!made && errno == ENOENT) {  // parent removed behind our back: recreate it once
    RETURN_ON_FAILURE(prepareParent(h, parent, err));
    made = mkdir(dir.c_str(), 0755) == 0;
  }
  if (!made) {
    int e = errno;
    g.dirs.clear();  // not ours (EEXIST) or not made: nothing to remove
    return fail(err, "cgroup-create", "mkdir", dir.c_str(), e);
  }
  g.dirFd = open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  bool ok = g.dirFd >= 0 || fail(err, "cgroup-create", "open", dir.c_str(), errno);
  ok = ok && (!has(h, "memory") || writeMemory(true, dir, l.memoryBytes, false, err));
  ok = ok && (!has(h, "pids") || writePids(true, dir, l.pids, err));
  ok = ok && (!has(h, "cpu") || writeCpu(true, dir, l.cpus, err));
  if (!ok) {
    Error ignored;
    remove(g, ignored);
  }
  return ok;
}

int killAll(const Group& g) {
  int killed = 0;
  Error ignored;
  const std::string& dir = g.dirs.empty() ? std::string() : g.dirs[0];
  if (dir.empty()) return 0;
  bool hasKill = access((dir + "/cgroup.kill").c_str(), F_OK) == 0;
  for (int round = 0; round < 100; round++) {
    std::vector<int> pids = readProcs(dir);
    if (pids.empty()) break;
    if (round == 0) killed = (int)pids.size();
    if (hasKill) {
      writeFile(dir + "/cgroup.kill", "1", ignored, "kill");
    } else {
      writeFile(dir + "/cgroup.freeze", "1", ignored, "kill");
      for (int p : readProcs(dir)) kill(p, SIGKILL);
      writeFile(dir + "/cgroup.freeze", "0", ignored, "kill");
    }
    sleepUs(round < 10 ? 100 : 1000);
  }
  return killed;
}

int sweep(const Host& h, const std::string& parent, int& processes) {
  std::string base = h.v2Root + "/" + parent;
  DIR* d = opendir(base.c_str());
  if (!d) return 0;
  std::vector<std::string> names;
  while (struct dirent* e = readdir(d))
    if (e->d_type == DT_DIR && e->d_name[0] != '.') names.push_back(e->d_name);
  closedir(d);
  int removed = 0;
  for (const auto& n : names) {
    Group g;
    g.v2 = true;
    g.dirs.push_back(base + "/" + n);
    processes += v2::killAll(g);
    Error ignored;
    if (remove(g, ignored)) removed++;
  }
  return removed;
}

}  // namespace sbx::cgroup::v2
