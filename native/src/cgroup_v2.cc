// cgroup v2: one directory; the child is created inside it (clone3 CLONE_INTO_CGROUP), killed with
// cgroup.kill (>= 5.14) or freeze + SIGKILL + thaw, and removed with rmdir.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mutex>
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

// P17 on v2: a BPF_PROG_TYPE_CGROUP_DEVICE program (1 = allow, 0 = deny) with kAllowedDevices.
// ctx = struct bpf_cgroup_dev_ctx {u32 access_type (access << 16 | type); u32 major; u32 minor}.
std::vector<struct bpf_insn> deviceProgram() {
  std::vector<struct bpf_insn> p;
  auto ins = [&](uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
    struct bpf_insn i = {};
    i.code = code;
    i.dst_reg = dst & 0xf;
    i.src_reg = src & 0xf;
    i.off = off;
    i.imm = imm;
    p.push_back(i);
  };
  ins(BPF_LDX | BPF_MEM | BPF_W, 2, 1, 0, 0);  // r2 = access_type
  ins(BPF_ALU64 | BPF_AND | BPF_K, 2, 0, 0, 0xffff);  // r2 = type
  ins(BPF_LDX | BPF_MEM | BPF_W, 3, 1, 4, 0);  // r3 = major
  ins(BPF_LDX | BPF_MEM | BPF_W, 4, 1, 8, 0);  // r4 = minor
  std::vector<size_t> toDeny;
  toDeny.push_back(p.size());
  ins(BPF_JMP | BPF_JNE | BPF_K, 2, 0, 0, BPF_DEVCG_DEV_CHAR);  // block devices: never
  for (const DevRule& r : kAllowedDevices) {
    bool any = r.minor < 0;
    ins(BPF_JMP | BPF_JNE | BPF_K, 3, 0, any ? 2 : 3, (int32_t)r.major);
    if (!any) ins(BPF_JMP | BPF_JNE | BPF_K, 4, 0, 2, r.minor);
    ins(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 1);
    ins(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
  }
  size_t deny = p.size();
  ins(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 0);
  ins(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
  for (size_t i : toDeny) p[i].off = (int16_t)(deny - i - 1);
  return p;
}

// Loaded once; the fd (O_CLOEXEC from the kernel) is kept for the process lifetime. Node's thread
// and the pooled setups' maker (zygote.cc) both create groups.
bool deviceProgFd(int& fd, Error& err) {
  static Fd progFd;
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  if (!progFd.valid()) {
    static const std::vector<struct bpf_insn> prog = deviceProgram();
    static const char license[] = "Apache-2.0";
    union bpf_attr a = {};
    a.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    a.insn_cnt = (uint32_t)prog.size();
    a.insns = (uint64_t)(uintptr_t)prog.data();
    a.license = (uint64_t)(uintptr_t)license;
    progFd.reset((int)syscall(SYS_bpf, BPF_PROG_LOAD, &a, sizeof a));
    if (!progFd.valid()) return fail(err, "cgroup-devices", "bpf(BPF_PROG_LOAD)", "", errno, kHost);
  }
  fd = progFd.get();
  return true;
}

bool attachDevices(int cgroupFd, const std::string& dir, Error& err) {
  int prog;
  RETURN_ON_FAILURE(deviceProgFd(prog, err));
  union bpf_attr a = {};
  a.target_fd = (uint32_t)cgroupFd;
  a.attach_bpf_fd = (uint32_t)prog;
  a.attach_type = BPF_CGROUP_DEVICE;
  if (syscall(SYS_bpf, BPF_PROG_ATTACH, &a, sizeof a) != 0)
    return fail(err, "cgroup-devices", "bpf(BPF_PROG_ATTACH)", dir.c_str(), errno);
  return true;
}

}  // namespace

bool limitParent(const Host& h, const std::string& parent, uint64_t memoryBytes, uint64_t pids, Error& err) {
  RETURN_ON_FAILURE(prepareParent(h, parent, err));
  std::string dir = h.v2Root + "/" + parent;
  if (memoryBytes && has(h, "memory")) RETURN_ON_FAILURE(writeFile(dir + "/memory.max", std::to_string(memoryBytes), err, "cgroup-parent"));
  if (pids && has(h, "pids")) RETURN_ON_FAILURE(writeFile(dir + "/pids.max", std::to_string(pids), err, "cgroup-parent"));
  return true;
}

void plan(const Host& h, const std::string& parent, const std::string& id, Group& g) {
  g.v2 = true;
  std::string dir = h.v2Root + "/" + parent + "/" + id;
  g.dirs.push_back(dir);
  g.memory = g.pids = g.cpu = g.cpuacct = g.freezer = dir;
}

bool create(const Host& h, const std::string& parent, const spec::Limits& l, Group& g, Error& err) {
  static std::set<std::string> preparedParents;  // subtree_control written once per parent
  static std::mutex mu;                          // Node's thread and the pooled setups' maker (zygote.cc)
  {
    std::lock_guard<std::mutex> lock(mu);
    if (!preparedParents.count(parent)) {
      RETURN_ON_FAILURE(prepareParent(h, parent, err));
      preparedParents.insert(parent);
    }
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
  g.dirFd.reset(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));  // BPF attach needs a non-O_PATH fd
  bool ok = g.dirFd.valid() || fail(err, "cgroup-create", "open", dir.c_str(), errno);
  ok = ok && (!g.denyDevices || attachDevices(g.dirFd.get(), dir, err));
  ok = ok && (!has(h, "memory") || writeMemory(true, dir, l.memoryBytes, false, err));
  ok = ok && (!has(h, "pids") || writePids(true, dir, l.pids, err));
  ok = ok && (!has(h, "cpu") || writeCpu(true, dir, l.cpus, err));
  if (!ok) {
    Error ignored;
    remove(g, ignored);
  }
  return ok;
}

bool changeLimits(const Host& h, const spec::Limits& from, const spec::Limits& to, const Group& g, Error& err) {
  const std::string& dir = g.dirs[0];
  if (to.memoryBytes != from.memoryBytes && has(h, "memory")) RETURN_ON_FAILURE(writeFile(dir + "/memory.max", std::to_string(to.memoryBytes), err, "cgroup-memory"));
  if (to.pids != from.pids && has(h, "pids")) RETURN_ON_FAILURE(writePids(true, dir, to.pids, err));
  if (to.cpus != from.cpus && has(h, "cpu")) RETURN_ON_FAILURE(writeCpu(true, dir, to.cpus, err));
  return true;
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

int sweep(const Host& h, const std::string& parent, const std::set<std::string>& keep, int& processes, int& left) {
  std::string base = h.v2Root + "/" + parent;
  DIR* d = opendir(base.c_str());
  if (!d) return 0;
  std::vector<std::string> names;
  while (struct dirent* e = readdir(d))
    if (e->d_type == DT_DIR && e->d_name[0] != '.') names.push_back(e->d_name);
  closedir(d);
  int removed = 0;
  for (const auto& n : names) {
    if (keep.count(base + "/" + n)) continue;  // a job this process runs
    Group g;
    g.v2 = true;
    g.dirs.push_back(base + "/" + n);
    processes += v2::killAll(g);
    Error ignored;
    if (remove(g, ignored)) removed++;
    else left++;
  }
  return removed;
}

}  // namespace sbx::cgroup::v2
