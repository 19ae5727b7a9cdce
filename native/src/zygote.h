// Pooled setups ("zygotes"): for each (slot, options) one job's worth of everything that does not
// depend on the job, made ahead of time and used by exactly one job, never reused:
//   - the job's cgroups (v1: one directory per hierarchy, device allow-list written), named
//     <parent>/pool-<launcher pid>-<n> until the job arrives, then renamed to <parent>/<job id>
//     and given the job's limits;
//   - the pid 1 of a new pid namespace, in those cgroups, with new mount, uts, ipc, net and cgroup
//     namespaces, running the job-independent mount program (mnt::buildPrepOps: /proc, /dev,
//     /sys with their masks, the idmapped init layer), then sbx-init, which waits for the job
//     message (jobmsg.h) on its sync socket and is otherwise idle.
// A launch that finds one for its (slot, options) sends it the job (its mounts, hostname, argv,
// env and stdio), renames and limits the group, and sends the init config as usual; then the next
// one for that slot is made (refill). The launcher's exit (pdeathsig), closeAll() and sweep()
// remove what is left. Only on cgroup v1 (v2 cannot rename a group; a v2 job's group must exist at
// clone time under the job's name): v2 launches keep the direct path.
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

struct Zygote {
  std::string key;
  int pid = -1;
  Fd pidfd, sync;        // launcher ends
  Fd mntns;              // its mount namespace ('N'), read from the socket by take()
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
  void* stack = nullptr;
  ~Zygote();
};

// Pooling applies to these options on this host (v1, option `pool`, a usable /dev template).
bool usable(const cgroup::Host& h, const spec::Options& o);
std::string key(const spec::Options& o, uint32_t slot);
// The ready (or still preparing) setup for `key`, alive; nullptr if none.
std::unique_ptr<Zygote> take(const std::string& key);
// Make one for (options, slot) if there is none. Failures only mean later launches take the direct
// path (after 3 failures in a row for a key, no more attempts for it).
void refill(const cgroup::Host& h, const spec::Options& o, uint32_t slot, int initFd);
// Kill it, reap it, remove its cgroups.
void discard(std::unique_ptr<Zygote> z);
// Every pooled setup of this process (at shutdown: the env cleanup hook, closePool()).
int closeAll();
// The cgroup directories of this process's pooled setups (sweep() leaves them alone).
std::set<std::string> groupDirs();
size_t count();
// The job message (jobmsg.h) for these job mounts and spec; false if it would be too large.
bool encodeJob(const std::vector<mnt::Op>& ops, const spec::Spec& s, std::string& out);

}  // namespace sbx::zygote
