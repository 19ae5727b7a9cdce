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
#include "mnt_op.h"
#include "spec.h"

namespace sbx::mnt {

// Owns the strings the Ops point to (deque: stable addresses).
using Arena = std::deque<std::string>;

// Host-side preparation done once per state dir: <stateDir>/mnt (the mount point, empty on the
// host) and <stateDir>/initlayer (top read-only layer whose real directories /proc /dev /sys /tmp
// shadow whatever the image ships there, P13).
bool prepareStateDir(const std::string& stateDir, Error& err);

// usernsFd >= 0: image layers are idmapped to that user namespace (hostBase = its uid 0).
// layerFds (pooled setups): one detached clone (open_tree OPEN_TREE_CLONE) per s.lowerDirs entry;
// each layer is attached from it, read-only (idmapped with a user namespace), so what the setup
// mounts is exactly what the launcher cloned (and can compare with the job's layers by inode).
// The last op is always the pivot_root (the direct path's child runs it separately, after joining
// its cgroups).
bool buildOps(const spec::Spec& s, const spec::Options& o, int usernsFd, uint32_t hostBase, Arena& arena,
              std::vector<Op>& ops, Error& err, const std::vector<int>* layerFds = nullptr);

// Pooled setups (zygote.h) work here (the /dev template is usable).
bool pooledUsable(const spec::Options& o);

}  // namespace sbx::mnt
