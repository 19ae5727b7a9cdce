// The setup child's and sbx-init's side of the mount program: walk a list of Ops with raw
// syscalls (async-signal-safe: the setup child shares Node's memory). Linked into both the addon
// and sbx-init (a pooled job's per-job mounts run in sbx-init, see zygote.h).
#include <errno.h>
#include <fcntl.h>
#include <sys/mount.h>

#include "mnt_op.h"
#include "sys.h"

namespace sbx::mnt {
namespace {

// <linux/mount.h> clashes with <sys/mount.h> on glibc 2.36: the few new-mount-API constants.
constexpr long kOpenTreeClone = 1;
constexpr long kMoveMountFEmptyPath = 0x4;
constexpr uint64_t kAttrRdonly = 0x1, kAttrNosuid = 0x2, kAttrNodev = 0x4, kAttrNoexec = 0x8, kAttrIdmap = 0x00100000;
#ifndef __NR_open_tree
#define __NR_open_tree 428
#define __NR_move_mount 429
#endif
#ifndef __NR_mount_setattr
#define __NR_mount_setattr 442
#endif

long cloneTree(const char* path) { return sys::sc(__NR_open_tree, AT_FDCWD, path, kOpenTreeClone | O_CLOEXEC); }

long runOp(const Op& op, long clone) {
  using sys::sc;
  switch (op.kind) {
    case OpKind::kMount:
      return sc(__NR_mount, op.src, op.dst, op.fstype, op.flags, op.data);
    case OpKind::kBind:
      return sc(__NR_mount, op.src, op.dst, nullptr, op.flags, nullptr);
    case OpKind::kRemountRo:
      return sc(__NR_mount, nullptr, op.dst, nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | op.flags, nullptr);
    case OpKind::kMkdir: {
      long r = sc(__NR_mkdirat, AT_FDCWD, op.dst, op.mode);
      if (r == 0 && (op.mode & 07000)) r = sc(__NR_fchmodat, AT_FDCWD, op.dst, op.mode);
      return r;
    }
    case OpKind::kTouch: {
      long fd = sc(__NR_openat, AT_FDCWD, op.dst, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, op.mode);
      if (fd < 0) return fd;
      sc(__NR_close, fd);
      return 0;
    }
    case OpKind::kSymlink:
      return sc(__NR_symlinkat, op.src, AT_FDCWD, op.dst);
    case OpKind::kChdir:
      return sc(__NR_chdir, op.dst);
    case OpKind::kIdmapLayer: {
      // open_tree(OPEN_TREE_CLONE) + mount_setattr(MOUNT_ATTR_IDMAP | RDONLY) + move_mount.
      // (srcFd: a detached clone the launcher made, clone: one this child made before it left the
      // host's mount namespace; closing our copy of either below is fine.)
      long t = clone >= 0 ? clone : op.srcFd >= 0 ? op.srcFd : cloneTree(op.src);
      if (t < 0) return t;
      // op.flags: MS_* wanted on the clone (default for layers: ro, nosuid, nodev).
      unsigned long f = op.flags ? op.flags : (MS_RDONLY | MS_NOSUID | MS_NODEV);
      uint64_t set = ((f & MS_RDONLY) ? kAttrRdonly : 0) | ((f & MS_NOSUID) ? kAttrNosuid : 0) |
                     ((f & MS_NODEV) ? kAttrNodev : 0) | ((f & MS_NOEXEC) ? kAttrNoexec : 0) |
                     (op.fd >= 0 ? kAttrIdmap : 0);
      struct { uint64_t set, clr, prop, userns; } attr = {set, 0, 0, (uint64_t)(op.fd >= 0 ? op.fd : 0)};
      long r = sc(__NR_mount_setattr, t, "", AT_EMPTY_PATH, &attr, sizeof attr);
      if (r == 0) r = sc(__NR_move_mount, t, "", AT_FDCWD, op.dst, kMoveMountFEmptyPath);
      sc(__NR_close, t);
      return r;
    }
    case OpKind::kChown:
      return sc(__NR_fchownat, AT_FDCWD, op.dst, op.uid, op.gid, AT_SYMLINK_NOFOLLOW);
    case OpKind::kPivot: {
      // nsjail/runc: pivot_root(".", ".") stacks the old root on top; detach it, then cd /.
      long r = sc(__NR_pivot_root, ".", ".");
      if (r == 0) r = sc(__NR_umount2, ".", MNT_DETACH);
      if (r == 0) r = sc(__NR_chdir, "/");
      return r;
    }
  }
  return -EINVAL;
}

const char* opSyscall(OpKind k) {
  switch (k) {
    case OpKind::kMount: case OpKind::kBind: case OpKind::kRemountRo: return "mount";
    case OpKind::kMkdir: return "mkdirat";
    case OpKind::kTouch: return "openat";
    case OpKind::kSymlink: return "symlinkat";
    case OpKind::kChdir: return "chdir";
    case OpKind::kPivot: return "pivot_root";
    case OpKind::kIdmapLayer: return "open_tree/mount_setattr/move_mount";
    case OpKind::kChown: return "fchownat";
  }
  return "?";
}

}  // namespace

bool cloneSourcesInChild(const Op* ops, size_t n, long* clones, Error& err) {
  if (n > kMaxOps) return fail(err, "mount", "", "too many mount steps", E2BIG);
  for (size_t i = 0; i < n; i++) {
    clones[i] = -1;
    if (ops[i].kind != OpKind::kIdmapLayer || ops[i].srcFd >= 0) continue;
    clones[i] = cloneTree(ops[i].src);
    if (clones[i] < 0) return fail(err, ops[i].stage, "open_tree", ops[i].src, clones[i]);
  }
  return true;
}

bool setupInChild(const Op* ops, size_t n, Error& err, const long* clones) {
  for (size_t i = 0; i < n; i++) {
    long r = runOp(ops[i], clones ? clones[i] : -1);
    if (r < 0 && !(ops[i].optional && r == -ENOENT)) return fail(err, ops[i].stage, opSyscall(ops[i].kind), ops[i].dst, r);
  }
  return true;
}

}  // namespace sbx::mnt
