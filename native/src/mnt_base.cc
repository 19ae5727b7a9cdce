// The mount namespace setup children start from, pooled or direct (mnt.h baseNamespace()): a
// read-only empty tmpfs as "/", and the state dir bound (read-only, without its submounts) at its own
// path. unshare(2) of a mount namespace copies every mount of the caller's, and pivot_root then
// detaches every copy: on a host with hundreds of mounts (container overlays, pod volumes) that is
// most of a setup's mount work. A setup that joins this namespace first copies two mounts instead.
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "fd.h"
#include "mnt.h"
#include "threads.h"

namespace sbx::mnt {
namespace {

// Make the directories the literal `path` walks through under `root` (where there are no symlinks:
// "." stays, ".." goes one up) so that it resolves there; `at` gets where it ends.
bool mkdirsAlong(const std::string& root, const std::string& path, std::string& at, Error& err) {
  at = root;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    std::string c = path.substr(i, j - i);
    i = j + 1;
    if (c.empty() || c == ".") continue;
    if (c == "..") {
      if (at.size() > root.size()) at.resize(at.rfind('/'));
      continue;
    }
    at += "/" + c;
    if (mkdir(at.c_str(), 0755) != 0 && errno != EEXIST) return fail(err, "mount-base", "mkdir", at.c_str(), errno, kHost);
  }
  if (at == root) return fail(err, "mount-base", "", "stateDir is /", EINVAL, kHost);
  return true;
}

// Runs on a thread of its own: unshare(CLONE_NEWNS) gives the thread its own fs_struct, and the
// pivot_root below changes only that thread's root. The namespace outlives the thread through `out`.
bool build(const std::string& stateDir, Fd& out, Error& err) {
  if (unshare(CLONE_NEWNS) != 0) return fail(err, "mount-base", "unshare", "", errno, kHost);
  Fd ns(open("/proc/thread-self/ns/mnt", O_RDONLY | O_CLOEXEC));
  if (!ns.valid()) return fail(err, "mount-base", "open", "/proc/thread-self/ns/mnt", errno, kHost);
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return fail(err, "mount-base", "mount", "/", errno, kHost);
  // The new root, mounted on a directory of ours (only in this namespace: the host sees nothing).
  const std::string root = stateDir + "/mnt";
  if (mount("tmpfs", root.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,nr_inodes=256,mode=0755") != 0)
    return fail(err, "mount-base", "mount", root.c_str(), errno, kHost);
  std::string at;
  RETURN_ON_FAILURE(mkdirsAlong(root, stateDir, at, err));
  // Not recursive: the tmpfs on <stateDir>/mnt stays out; a setup mounts its scratch tmpfs there.
  if (mount(stateDir.c_str(), at.c_str(), nullptr, MS_BIND, nullptr) != 0)
    return fail(err, "mount-base", "mount", at.c_str(), errno, kHost);
  if (mount(nullptr, at.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID, nullptr) != 0)
    return fail(err, "mount-base", "remount", at.c_str(), errno, kHost);
  if (chdir(root.c_str()) != 0) return fail(err, "mount-base", "chdir", root.c_str(), errno, kHost);
  if (syscall(SYS_pivot_root, ".", ".") != 0) return fail(err, "mount-base", "pivot_root", root.c_str(), errno, kHost);
  if (umount2(".", MNT_DETACH) != 0) return fail(err, "mount-base", "umount2", "old root", errno, kHost);
  if (chdir("/") != 0) return fail(err, "mount-base", "chdir", "/", errno, kHost);
  if (mount(nullptr, "/", nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
    return fail(err, "mount-base", "remount", "/", errno, kHost);
  out = std::move(ns);
  return true;
}

}  // namespace

int baseNamespace(const spec::Options& o) {
  if (!pooledUsable(o)) return -1;
  static std::mutex mu;
  // Per state dir, kept until exit; an invalid Fd where it could not be made (tried once).
  static std::map<std::string, Fd>* made = new std::map<std::string, Fd>();
  std::lock_guard<std::mutex> lock(mu);
  auto it = made->find(o.stateDir);
  if (it == made->end()) {
    Fd ns;
    Error ignored;  // the setups then copy the launcher's namespace, as they did before
    int noThread = 0;
    // No thread to build it on (the host's pids limit): not recorded, tried again next time.
    if (!threads::runOnOwnThread([&] { build(o.stateDir, ns, ignored); }, noThread)) return -1;
    it = made->emplace(o.stateDir, std::move(ns)).first;
  }
  return it->second.get();
}

}  // namespace sbx::mnt
