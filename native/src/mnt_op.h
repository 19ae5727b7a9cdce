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

// The most ops a setup child pre-clones for (cloneSourcesInChild): 128 layers take about 300.
constexpr size_t kMaxOps = 512;

// Setup child, before it joins the base mount namespace (mnt.h baseNamespace()), where the host's
// paths are out of reach: clone the source of every kIdmapLayer op that has no srcFd (open_tree
// OPEN_TREE_CLONE of its path) into clones[i]; -1 for the other ops. Async-signal-safe.
bool cloneSourcesInChild(const Op* ops, size_t n, long* clones, Error& err);

// Setup child: run the ops; clones (from cloneSourcesInChild, same indexes) or nullptr.
// Async-signal-safe.
bool setupInChild(const Op* ops, size_t n, Error& err, const long* clones = nullptr);

}  // namespace sbx::mnt
