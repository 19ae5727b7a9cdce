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
// The last op is always the pivot_root (the child runs it separately, after joining its cgroups).
bool buildOps(const spec::Spec& s, const spec::Options& o, int usernsFd, uint32_t hostBase, Arena& arena,
              std::vector<Op>& ops, Error& err);


// Pooled setups (zygote.h): the job-independent part, run by the pooled setup child before it
// execs sbx-init (ends in the stage dir <stateDir>/mnt), and the job's part, run by that sbx-init
// once the job arrives (ends with pivot_root). pooledUsable: the /dev template works here.
bool pooledUsable(const spec::Options& o);
void buildPrepOps(const spec::Options& o, int usernsFd, uint32_t hostBase, Arena& arena, std::vector<Op>& ops);
bool buildJobOps(const spec::Spec& s, const spec::Options& o, int usernsFd, uint32_t hostBase, Arena& arena,
                 std::vector<Op>& ops, Error& err);

}  // namespace sbx::mnt
