// One step of the job's mount program (mnt.h builds them, mnt_run.cc runs them). No Node headers:
// sbx-init links this too.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "error.h"

namespace sbx::mnt {

enum class OpKind : uint8_t { kMount, kBind, kRemountRo, kMkdir, kTouch, kSymlink, kChdir, kPivot, kIdmapLayer, kChown };

struct Op {
  OpKind kind;
  bool optional;  // a missing target (ENOENT) is not an error (e.g. /proc/acpi on a VM)
  uint32_t mode;
  unsigned long flags;
  const char* src;
  const char* dst;
  const char* fstype;
  const char* data;
  const char* stage;
  int fd;             // kIdmapLayer: the user namespace fd
  uint32_t uid, gid;  // kChown
  int srcFd = -1;     // kIdmapLayer: attach this detached clone (open_tree) instead of cloning src
};

// Setup child: run the ops. Async-signal-safe.
bool setupInChild(const Op* ops, size_t n, Error& err);

}  // namespace sbx::mnt
