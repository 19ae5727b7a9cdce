// Pooled setups ("zygotes"): for each slot, a job's worth of setup made ahead of time for the image
// of the slot's last job (the same lowerDirs and disk size), used by exactly one job, never reused:
//   - the job's cgroups with the limits of the slot's last job written (v1: one directory per
//     hierarchy and the device allow-list; v2: one directory and the BPF device program), named
//     <parent>/pool-<launcher pid>-<n> until the job arrives, then given the job's limits where they
//     differ; v1 renames them to <parent>/<job id>, v2 cannot rename a group (nor move the setup's
//     pid 1 out: its cgroup namespace is rooted there), so a v2 job keeps the pool name
//     (Launched.cgroups);
//   - the pid 1 of a new pid namespace, in those cgroups (v1: it joins them itself; v2: clone3
//     CLONE_INTO_CGROUP), with new mount, uts, ipc, net and cgroup
//     namespaces, having run the direct path's whole mount program (mnt::buildOps: scratch tmpfs,
//     the image's layers as read-only (idmapped) clones of the directories the launcher opened,
//     overlay, /proc, /dev, /sys with their masks, /dev/shm, pivot_root), then sbx-init, which
//     drops every privilege with the init config of the slot's last job (init_config.h: rlimits,
//     user namespace, capabilities, credentials, cwd, no_new_privs, seccomp) and waits for the job
//     message (jobmsg.h: argv, env, stdio), otherwise idle.
// A launch takes one only if it was made for the job's image, each layer directory still is the one
// it mounted (same device and inode) and the job's init config is the one it dropped privileges
// with; it sets the job's hostname in the setup's uts namespace (from this thread: sbx-init no
// longer can), sends the job, writes the limits that differ, sends "G" (sbx-init starts nothing of
// the job before: the limits are in place), and makes the groups the job's. Setups made for another
// image, config or layers are killed and removed instead, and the job takes the direct path. Then the
// next ones for that slot are made, for this job's image (refill). The launcher's exit (pdeathsig),
// closeAll() and sweep() remove what is left.
#pragma once
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "cgroup.h"
#include "child.h"
#include "fd.h"
#include "mnt.h"
#include "spec.h"

namespace sbx::zygote {

struct LayerId {
  uint64_t dev, ino;
};

struct Zygote {
  std::string key;
  std::string image;             // imageKey() of the spec it was made for
  std::vector<LayerId> layers;   // the directories it mounted, per lowerDirs entry
  spec::Limits limits;           // written to its groups (those of the spec it was made for)
  std::string config;            // the init config (init_config.h) its sbx-init dropped privileges with
  int pid = -1;
  Fd pidfd, sync;        // launcher ends
  Fd mntns;              // its mount namespace ('N'), read from the socket by take()
  Fd netns;              // the network namespace it joins (kept: a job's listener is made in it, ready or not)
  bool ready = false;    // take() found 'R': the setup was done and waiting (diagnostics)
  cgroup::Group group;   // pool-<pid>-<n>, until renamed to the job's
  // Read by the setup child until it has exec'd sbx-init (it shares our memory): kept as long as
  // the job runs.
  mnt::Arena arena;
  std::vector<mnt::Op> ops;
  std::vector<std::string> joinFiles;
  std::vector<const char*> joinPtrs;
  std::vector<int> joinFds;  // valid only until clone returned (the child has copies)
  char* argv[2] = {nullptr, nullptr};
  char* envp[1] = {nullptr};
  child::Args args{};
  std::vector<int> keptFds;  // args.keptFds
  void* stack = nullptr;
  ~Zygote();
};

// Pooling applies to these options on this host (v1, option `pool`, a usable /dev template).
bool usable(const cgroup::Host& h, const spec::Options& o);
std::string key(const spec::Options& o, uint32_t slot);
// What a setup depends on in the spec: the layer directories and the disk size (its mounts), and
// the init config (its privileges).
std::string imageKey(const spec::Spec& s);
// The ready (or still preparing) setup for `key` made for this spec's image and init config, alive,
// its layer directories unchanged; nullptr if none. The others of that key are killed (removed by
// refill()).
std::unique_ptr<Zygote> take(const std::string& key, const spec::Spec& s, const std::string& config);
// Ask the maker thread (zygote.cc) to remove the setups take() killed, then make the slot's next
// ones for this spec's image and its init config (`config`, as init_config::build made it for the
// launch); returns at once. Failures only mean later launches take
// the direct path (after 3 failures in a row for a key and image, no more attempts until the slot's
// image changes).
void refill(const cgroup::Host& h, const spec::Options& o, const spec::Spec& s, const std::string& config, int initFd);
// Kill it, reap it, remove its cgroups.
void discard(std::unique_ptr<Zygote> z);
// Every pooled setup of this process (at shutdown: the env cleanup hook, closePool()).
int closeAll();
// The cgroup directories of this process's pooled setups (sweep() leaves them alone); `made`, if
// given: how many setups were begun by then (the newest is pool-<pid>-<made>), read with the list.
std::set<std::string> groupDirs(uint64_t* made = nullptr);
size_t count();
// The job message (jobmsg.h) for this spec; false if it would be too large.
bool encodeJob(const spec::Spec& s, std::string& out);

}  // namespace sbx::zygote
