#include "mnt.h"

#include <mutex>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <sys/mount.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <map>

#include "sys.h"

namespace sbx::mnt {
namespace {

// runc / moby defaults (P15). Directories get an empty read-only tmpfs, files our own /dev/null.
const char* const kMaskedPaths[] = {
    "proc/acpi",        "proc/asound",     "proc/interrupts", "proc/kcore",
    "proc/keys",        "proc/latency_stats", "proc/sched_debug", "proc/scsi",
    "proc/timer_list",  "proc/timer_stats",
    "sys/devices/virtual/powercap", "sys/firmware", "sys/kernel/security", "sys/kernel/debug",
    "sys/fs/bpf",
};
const char* const kReadOnlyPaths[] = {"proc/bus", "proc/fs", "proc/irq", "proc/sys", "proc/sysrq-trigger"};
const char* const kDevices[] = {"null", "zero", "full", "random", "urandom", "tty"};
const unsigned long kNoSuidDevExec = MS_NOSUID | MS_NODEV | MS_NOEXEC;
struct Builder {
  Arena& arena;
  std::vector<Op>& ops;
  const char* str(const std::string& s) { return arena.emplace_back(s).c_str(); }
  void add(OpKind k, const char* stage, const char* src, const char* dst, const char* fstype = nullptr,
           unsigned long flags = 0, const char* data = nullptr, uint32_t mode = 0, bool optional = false) {
    ops.push_back(Op{k, optional, mode, flags, src, dst, fstype, data, stage, -1, 0, 0});
  }
};

bool isDir(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
bool exists(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0;
}

bool addRootfs(Builder& b, const spec::Spec& s, const spec::Options& o, int usernsFd, uint32_t hostBase,
               const std::vector<int>* layerFds, Error& err) {
  std::string scratch = o.stateDir + "/mnt";
  uint64_t inodes = s.limits.diskBytes / 4096;
  if (inodes < 4096) inodes = 4096;
  b.add(OpKind::kMount, "mount-private", nullptr, "/", nullptr, MS_REC | MS_PRIVATE);
  b.add(OpKind::kMount, "scratch-tmpfs", "tmpfs", b.str(scratch), "tmpfs", MS_NOSUID | MS_NODEV,
        b.str("size=" + std::to_string(s.limits.diskBytes) + ",nr_inodes=" + std::to_string(inodes) + ",mode=0700"));
  b.add(OpKind::kMkdir, "scratch-dirs", nullptr, b.str(scratch + "/upper"), nullptr, 0, nullptr, 0755);
  b.add(OpKind::kMkdir, "scratch-dirs", nullptr, b.str(scratch + "/work"), nullptr, 0, nullptr, 0700);
  b.add(OpKind::kMkdir, "scratch-dirs", nullptr, b.str(scratch + "/root"), nullptr, 0, nullptr, 0755);
  std::vector<std::string> layers{o.stateDir + "/initlayer"};  // top first
  for (auto it = s.lowerDirs.rbegin(); it != s.lowerDirs.rend(); ++it) layers.push_back(*it);
  // A layer is attached in the scratch tmpfs as l<i> (a read-only clone) when it is idmapped or comes
  // from the launcher's detached clone (pooled setups). The overlay is mounted from the scratch dir,
  // so those are named relative to it: mount(2) takes one page of options, and 128 layers by their
  // absolute paths do not fit in it. When even so they would not, every image layer is attached.
  std::vector<bool> attach(layers.size());
  for (size_t i = 0; i < layers.size(); i++) attach[i] = usernsFd >= 0 || (i > 0 && layerFds);
  auto options = [&]() {
    std::string lower;
    for (size_t i = 0; i < layers.size(); i++) lower += (i ? ":" : "") + (attach[i] ? "l" + std::to_string(i) : layers[i]);
    return "lowerdir=" + lower + ",upperdir=upper,workdir=work";
  };
  std::string data = options();
  if (data.size() > 4000) {
    for (size_t i = 1; i < layers.size(); i++) attach[i] = true;
    data = options();
  }
  if (data.size() > 4000)  // mount(2) data is one page
    return fail(err, "spec", "", "lowerDirs: overlay options exceed one page; use a shorter state dir path", E2BIG, kInvalidSpec);
  for (size_t i = 0; i < layers.size(); i++) {
    if (!attach[i]) continue;
    // layerFds (pooled setups): image layer i is attached from the launcher's detached clone of it
    int srcFd = i > 0 && layerFds ? (*layerFds)[s.lowerDirs.size() - i] : -1;
    std::string dir = scratch + "/l" + std::to_string(i);
    b.add(OpKind::kMkdir, "idmap", nullptr, b.str(dir), nullptr, 0, nullptr, 0700);
    b.add(OpKind::kIdmapLayer, "idmap", b.str(layers[i]), b.str(dir));
    b.ops.back().fd = usernsFd;
    b.ops.back().srcFd = srcFd;
  }
  if (usernsFd >= 0) {  // the job's root owns "/" (the overlay root takes the upper root's owner)
    b.add(OpKind::kChown, "idmap", nullptr, b.str(scratch + "/upper"));
    b.ops.back().uid = b.ops.back().gid = hostBase;
  }
  b.add(OpKind::kChdir, "overlay", nullptr, b.str(scratch));  // the options' relative names
  b.add(OpKind::kMount, "overlay", "overlay", b.str(scratch + "/root"), "overlay", MS_NOSUID | MS_NODEV, b.str(data));
  b.add(OpKind::kChdir, "overlay", nullptr, b.str(scratch + "/root"));
  return true;
}

// /dev from the launcher's read-only template (<stateDir>/dev: device nodes, symlinks and mount
// points made once by prepareStateDir), attached as one detached clone: 3 syscalls instead of ~20.
void addDevFromTemplate(Builder& b, const spec::Options& o, uint64_t shmBytes, const std::string& owner, int usernsFd) {
  b.add(OpKind::kIdmapLayer, "dev", b.str(o.stateDir + "/dev"), "dev", nullptr, MS_NOSUID | MS_NOEXEC | MS_RDONLY);
  b.ops.back().fd = usernsFd;
  b.add(OpKind::kMount, "dev", "devpts", "dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620");
  b.add(OpKind::kMount, "dev", "shm", "dev/shm", "tmpfs", kNoSuidDevExec, b.str("mode=1777,size=" + std::to_string(shmBytes) + owner));
  b.add(OpKind::kMount, "dev", "mqueue", "dev/mqueue", "mqueue", kNoSuidDevExec);
}

void addDev(Builder& b, uint64_t shmBytes, const std::string& owner) {
  b.add(OpKind::kMount, "dev", "tmpfs", "dev", "tmpfs", kNoSuidDevExec, b.str("mode=0755,size=65536,nr_inodes=64" + owner));
  for (const char* d : kDevices) {
    const char* dst = b.str(std::string("dev/") + d);
    b.add(OpKind::kTouch, "dev", nullptr, dst, nullptr, 0, nullptr, 0666);
    b.add(OpKind::kBind, "dev", b.str(std::string("/dev/") + d), dst, nullptr, MS_BIND);
  }
  b.add(OpKind::kSymlink, "dev", "/proc/self/fd", "dev/fd");
  b.add(OpKind::kSymlink, "dev", "/proc/self/fd/0", "dev/stdin");
  b.add(OpKind::kSymlink, "dev", "/proc/self/fd/1", "dev/stdout");
  b.add(OpKind::kSymlink, "dev", "/proc/self/fd/2", "dev/stderr");
  b.add(OpKind::kMkdir, "dev", nullptr, "dev/pts", nullptr, 0, nullptr, 0755);
  b.add(OpKind::kMount, "dev", "devpts", "dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620");
  b.add(OpKind::kSymlink, "dev", "pts/ptmx", "dev/ptmx");
  b.add(OpKind::kMkdir, "dev", nullptr, "dev/shm", nullptr, 0, nullptr, 01777);
  b.add(OpKind::kMount, "dev", "shm", "dev/shm", "tmpfs", kNoSuidDevExec,
        b.str("mode=1777,size=" + std::to_string(shmBytes) + owner));
  b.add(OpKind::kMkdir, "dev", nullptr, "dev/mqueue", nullptr, 0, nullptr, 0755);
  b.add(OpKind::kMount, "dev", "mqueue", "dev/mqueue", "mqueue", kNoSuidDevExec);
  b.add(OpKind::kRemountRo, "dev", nullptr, "dev", nullptr, kNoSuidDevExec);
}

// The masks for this kernel: only paths that exist on the host (same kernel), computed once.
struct MaskSet {
  std::vector<std::string> dirs, files, readOnly;
};
const MaskSet& hostMasks() {
  static const MaskSet m = [] {
    MaskSet s;
    for (const char* p : kMaskedPaths) {
      std::string host = std::string("/") + p;
      if (exists(host)) (isDir(host) ? s.dirs : s.files).push_back(p);
    }
    glob_t g;
    if (glob("/sys/devices/system/cpu/cpu*/thermal_throttle", GLOB_NOSORT, nullptr, &g) == 0) {
      for (size_t i = 0; i < g.gl_pathc; i++) s.dirs.push_back(g.gl_pathv[i] + 1);
      globfree(&g);
    }
    for (const char* p : kReadOnlyPaths)
      if (exists(std::string("/") + p)) s.readOnly.push_back(p);
    return s;
  }();
  return m;
}

// Every masked directory shows one empty read-only tmpfs (size 0, its root its only inode), mounted
// once in the scratch dir (outside the job's root, detached with the old root at pivot_root) and
// bound onto each: one superblock per job instead of one per masked directory.
void addMasks(Builder& b, const spec::Options& o) {
  const MaskSet& m = hostMasks();  // strings live as long as the process: no copy needed
  if (!m.dirs.empty()) {
    const char* empty = b.str(o.stateDir + "/mnt/mask");
    b.add(OpKind::kMkdir, "mask", nullptr, empty, nullptr, 0, nullptr, 0555);
    b.add(OpKind::kMount, "mask", "tmpfs", empty, "tmpfs", kNoSuidDevExec | MS_RDONLY, "size=0,nr_inodes=1,mode=0555");
    for (const auto& p : m.dirs) b.add(OpKind::kBind, "mask", empty, p.c_str(), nullptr, MS_BIND, nullptr, 0, true);
  }
  for (const auto& p : m.files) b.add(OpKind::kBind, "mask", "dev/null", p.c_str(), nullptr, MS_BIND, nullptr, 0, true);
  for (const auto& p : m.readOnly) {
    b.add(OpKind::kBind, "readonly", p.c_str(), p.c_str(), nullptr, MS_BIND | MS_REC, nullptr, 0, true);
    b.add(OpKind::kRemountRo, "readonly", nullptr, p.c_str(), nullptr, kNoSuidDevExec, nullptr, 0, true);
  }
}

bool mkdirIfMissing(const std::string& p, mode_t mode, Error& err) {
  if (mkdir(p.c_str(), mode) != 0 && errno != EEXIST) return fail(err, "state-dir", "mkdir", p.c_str(), errno, kHost);
  struct stat st;
  if (lstat(p.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != 0)
    return fail(err, "state-dir", "lstat", p.c_str(), ENOTDIR, kHost);
  if ((st.st_mode & 07777) != mode && chmod(p.c_str(), mode) != 0)
    return fail(err, "state-dir", "chmod", p.c_str(), errno, kHost);
  return true;
}

struct DevNode {
  const char* name;
  unsigned major, minor;
};
const DevNode kDevNodes[] = {{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}};
const char* const kDevLinks[][2] = {{"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"},
                                    {"stderr", "/proc/self/fd/2"}, {"ptmx", "pts/ptmx"}};

// Make (or verify) one template entry; a wrong one (type, device numbers, owner, target) is
// replaced. Only root can write the template directory.
// Each entry is made under a name of this process and renamed into place: several worker processes
// may share a state dir and prepare it at the same moment, and none may ever see (or remove) a
// half-made node of another.
std::string privateName(const std::string& p) { return p + ".new." + std::to_string(getpid()); }

bool ensureDevNode(const std::string& dir, const DevNode& d, Error& err) {
  std::string p = dir + "/" + d.name;
  struct stat st;
  if (lstat(p.c_str(), &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(d.major, d.minor) && st.st_uid == 0 &&
      (st.st_mode & 07777) == 0666)
    return true;
  std::string tmp = privateName(p);
  unlink(tmp.c_str());
  if (mknod(tmp.c_str(), S_IFCHR | 0666, makedev(d.major, d.minor)) != 0) return fail(err, "state-dir", "mknod", tmp.c_str(), errno, kHost);
  if (chmod(tmp.c_str(), 0666) != 0) return fail(err, "state-dir", "chmod", tmp.c_str(), errno, kHost);
  return rename(tmp.c_str(), p.c_str()) == 0 || fail(err, "state-dir", "rename", p.c_str(), errno, kHost);
}

bool ensureDevLink(const std::string& dir, const char* name, const char* target, Error& err) {
  std::string p = dir + "/" + name;
  char buf[64];
  ssize_t n = readlink(p.c_str(), buf, sizeof buf - 1);
  if (n > 0 && (buf[n] = 0, strcmp(buf, target) == 0)) return true;
  std::string tmp = privateName(p);
  unlink(tmp.c_str());
  if (symlink(target, tmp.c_str()) != 0) return fail(err, "state-dir", "symlink", tmp.c_str(), errno, kHost);
  return rename(tmp.c_str(), p.c_str()) == 0 || fail(err, "state-dir", "rename", p.c_str(), errno, kHost);
}

bool prepareDevTemplate(const std::string& dir, Error& err) {
  RETURN_ON_FAILURE(mkdirIfMissing(dir, 0755, err));
  for (const auto& d : kDevNodes) RETURN_ON_FAILURE(ensureDevNode(dir, d, err));
  for (const auto& l : kDevLinks) RETURN_ON_FAILURE(ensureDevLink(dir, l[0], l[1], err));
  RETURN_ON_FAILURE(mkdirIfMissing(dir + "/pts", 0755, err));
  RETURN_ON_FAILURE(mkdirIfMissing(dir + "/shm", 01777, err));
  return mkdirIfMissing(dir + "/mqueue", 0755, err);
}

// The template's device nodes only work if the state dir's file system allows devices (checked
// once per state dir).
bool devTemplateUsable(const std::string& stateDir) {
  static std::map<std::string, bool> cache;
  static std::mutex mu;  // Node's thread and the pooled setups' maker (zygote.cc)
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(stateDir);
  if (it != cache.end()) return it->second;
  struct statvfs vfs;
  bool ok = statvfs((stateDir + "/dev").c_str(), &vfs) == 0 && !(vfs.f_flag & ST_NODEV);
  return cache[stateDir] = ok;
}

}  // namespace

bool prepareStateDir(const std::string& dir, Error& err) {
  std::string path;
  for (size_t i = 1; i <= dir.size(); i++) {  // mkdir -p for the parents (0755)
    if (i == dir.size() || dir[i] == '/') {
      path = dir.substr(0, i);
      if (mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) return fail(err, "state-dir", "mkdir", path.c_str(), errno, kHost);
    }
  }
  RETURN_ON_FAILURE(mkdirIfMissing(dir, 0711, err));
  RETURN_ON_FAILURE(mkdirIfMissing(dir + "/mnt", 0700, err));
  RETURN_ON_FAILURE(mkdirIfMissing(dir + "/initlayer", 0755, err));
  RETURN_ON_FAILURE(mkdirIfMissing(dir + "/initlayer/proc", 0555, err));
  RETURN_ON_FAILURE(mkdirIfMissing(dir + "/initlayer/sys", 0555, err));
  RETURN_ON_FAILURE(mkdirIfMissing(dir + "/initlayer/dev", 0755, err));
  RETURN_ON_FAILURE(mkdirIfMissing(dir + "/initlayer/tmp", 01777, err));
  return prepareDevTemplate(dir + "/dev", err);
}

bool buildOps(const spec::Spec& s, const spec::Options& o, int usernsFd, uint32_t hostBase, Arena& arena,
              std::vector<Op>& ops, Error& err, const std::vector<int>* layerFds) {
  Builder b{arena, ops};
  RETURN_ON_FAILURE(addRootfs(b, s, o, usernsFd, hostBase, layerFds, err));
  b.add(OpKind::kMount, "proc", "proc", "proc", "proc", kNoSuidDevExec);
  uint64_t shm = s.limits.diskBytes < (64u << 20) ? s.limits.diskBytes : (64u << 20);
  // With a user namespace, the job's root owns its /dev and /dev/shm (as it would without one).
  std::string owner = usernsFd >= 0 ? ",uid=" + std::to_string(hostBase) + ",gid=" + std::to_string(hostBase) : "";
  if (devTemplateUsable(o.stateDir)) addDevFromTemplate(b, o, shm, owner, usernsFd);
  else addDev(b, shm, owner);
  b.add(OpKind::kMount, "sys", "sysfs", "sys", "sysfs", kNoSuidDevExec | MS_RDONLY);
  addMasks(b, o);
  b.add(OpKind::kPivot, "pivot_root", nullptr, ".");
  return true;
}

// Pooled setups (zygote.h) run the same program (made ahead, for the image of their slot's last job).
bool pooledUsable(const spec::Options& o) { return devTemplateUsable(o.stateDir); }

}  // namespace sbx::mnt
