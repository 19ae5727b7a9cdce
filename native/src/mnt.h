// The job's filesystem: a size-limited tmpfs holding the overlay upper dir, the overlay of the
// read-only image layers, fresh /proc (masked), minimal /dev, read-only /sys, then pivot_root.
//
// The launcher builds the whole sequence up front as a list of Ops (all strings prepared); the
// setup child only walks the list with raw syscalls. Every mount lives in the job's private mount
// namespace, so it disappears with the job's last process: there is nothing to undo on the host.
#pragma once
#include <deque>
#include <string>
#include <vector>
#include "error.h"
#include "spec.h"

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
};

// Owns the strings the Ops point to (deque: stable addresses).
using Arena = std::deque<std::string>;

// Host-side preparation done once per state dir: <stateDir>/mnt (the mount point, empty on the
// host) and <stateDir>/initlayer (top read-only layer whose real directories /proc /dev /sys /tmp
// shadow whatever the image ships there, P13).
bool prepareStateDir(const std::string& stateDir, Error& err);

// usernsFd >= 0: image layers are idmapped to that user namespace (hostBase = its uid 0).
// The last op is always the pivot_root (the child runs it separately, after joining its cgroups).
bool buildOps(const spec::Spec& s, const spec::Options& o, int usernsFd, uint32_t hostBase, Arena& arena,
              std::vector<Op>& ops, Error& err);

// Setup child: run the ops. Async-signal-safe.
bool setupInChild(const Op* ops, size_t n, Error& err);

}  // namespace sbx::mnt
