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
// layerFds: one entry per s.lowerDirs entry, and every image layer is attached read-only (idmapped
// with a user namespace) rather than named in the overlay's options. An fd (pooled setups): a
// detached clone (open_tree OPEN_TREE_CLONE) the launcher made, so what the setup mounts is exactly
// what it cloned (and can compare with the job's layers by inode); -1: the setup child clones the
// path (before it joins the base mount namespace: mnt_op.h cloneSourcesInChild()).
// The last op is always the pivot_root (the direct path's child runs it separately, after joining
// its cgroups).
bool buildOps(const spec::Spec& s, const spec::Options& o, int usernsFd, uint32_t hostBase, Arena& arena,
              std::vector<Op>& ops, Error& err, const std::vector<int>* layerFds = nullptr);

// The mount namespace a setup child joins before it unshares its own (mnt_base.cc): a read-only
// empty tmpfs as "/" and <stateDir> bound read-only at its own path, so a setup copies two mounts
// and not the host's whole table. Made once per state dir and kept until the process exits; its fd,
// or -1 where it cannot be used (no /dev template: pooledUsable()) or could not be made (tried once).
// The child then reaches nothing of the host by path: it clones the layers first (or has the
// launcher's clones), and the rest of what it mounts is under the state dir.
int baseNamespace(const spec::Options& o);

// Pooled setups (zygote.h) and the base mount namespace work here: the /dev template is usable
// (without it, /dev is bound from the host's).
bool pooledUsable(const spec::Options& o);

}  // namespace sbx::mnt
