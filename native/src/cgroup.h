// Control groups: host detection (once), one group per job with hard limits, usage, kill, removal.
// cgroup.cc holds detection and the per-resource writers taking `bool v2` (crun's write_memory
// style); cgroup_v1.cc / cgroup_v2.cc hold only what really differs: create, join, kill, remove.
#pragma once
#include <stdint.h>
#include <initializer_list>
#include <map>
#include <set>
#include <string>
#include <vector>
#include "error.h"
#include "fd.h"
#include "spec.h"

namespace sbx::cgroup {

enum class Mode { kNone, kV1, kV2 };

struct Host {
  Mode mode = Mode::kNone;
  std::map<std::string, std::string> v1;  // controller -> mount point (v1)
  std::string v2Root;                     // cgroup2 mount point (v2)
  std::vector<std::string> v2Controllers; // available in v2Root/cgroup.controllers
  bool memsw = false;                     // v1 memory.memsw.* (swap accounting) present
  bool cgroupKill = false;                // v2 cgroup.kill (Linux >= 5.14)
  std::vector<std::string> missing;       // human sentences
  bool v1Devices = false;                 // v1 devices controller mounted (P17; optional)
};

// Detect once and cache. `v2RootOverride` (tests) forces the v2 code path on that cgroup2 mount.
const Host& host(const std::string& v2RootOverride = "");

struct Usage {
  uint64_t cpuNs = 0;
  uint64_t memoryPeak = 0;
  uint64_t oomKills = 0;
  uint64_t pidsMaxEvents = 0;
  uint64_t cpuThrottledNs = 0;  // time its cpus limit (CFS quota) held it back
};

// A running job's usage now (docker stats): read only when asked, never on a job's path.
struct Live {
  uint64_t cpuNs = 0;
  uint64_t memoryBytes = 0;  // v1 memory.usage_in_bytes, v2 memory.current (its files' pages included)
  uint64_t memoryPeak = 0;
  uint64_t pids = 0;         // pids.current
};

struct Group {
  bool v2 = false;
  std::vector<std::string> dirs;  // every directory created (v1: one per hierarchy); removed in reverse
  std::string memory, pids, cpu, cpuacct, freezer;  // v1 per-controller dirs (v2: all = dirs[0])
  std::string devices;            // v1 devices dir ("" = not used); v2: unused
  bool denyDevices = true;        // P17: device allow-list (v1 devices.deny/allow, v2 BPF program)
  Fd dirFd;                       // v2: O_RDONLY|O_DIRECTORY fd for CLONE_INTO_CGROUP and BPF attach
};

// Job group parent/<id>: plan() names the directories (no syscalls, so the paths can be handed to
// the setup child before it exists); create() makes them and writes the limits. On failure
// nothing is left behind.
// `denyDevices` (P17, default on; off only for the paired test control) adds the device allow-list.
void plan(const Host& h, const std::string& parent, const std::string& id, bool denyDevices, Group& g);
bool create(const Host& h, const std::string& parent, const spec::Limits& l, Group& g, Error& err);
// P29: aggregate limits on the parent group itself (0 = leave as is), so all jobs under it together
// cannot exceed them. Creates the parent if needed; written when first given or changed, and again
// when the parent was removed and made anew (checked by inode at each launch).
bool limitParent(const Host& h, const std::string& parent, uint64_t memoryBytes, uint64_t pids, Error& err);
// P17: the devices every job may use: c 1:3 1:5 1:7 1:8 1:9 5:0 5:2 136:* (null zero full random
// urandom tty ptmx pts); -1 = any minor.
struct DevRule { uint32_t major; int32_t minor; };
extern const DevRule kAllowedDevices[8];
// Pooled setups (zygote.h): a group made with one job's limits gets another's, only what differs
// (v1: memory+swap never below memory at any step).
bool sameLimits(const spec::Limits& a, const spec::Limits& b);
bool changeLimits(const Host& h, const spec::Limits& from, const spec::Limits& to, const Group& g, Error& err);
// v1: the files the setup child writes "0" to, to join by itself (see cgroup_v1.cc); v2: none
// (clone3 CLONE_INTO_CGROUP).
std::vector<std::string> selfJoinFiles(const Group& g);
int killAll(const Group& g);                       // returns number of processes signalled
void readUsage(const Group& g, Usage& u);
void readLive(const Group& g, Live& l);
bool remove(Group& g, Error& err);                 // rmdir all (killing stragglers); closes dirFd
// Janitor: kill and remove every job group under parent except those with a directory in `keep`
// (the groups of jobs this process still runs). Returns groups removed; `left` counts the groups
// it could not remove (e.g. a child group someone made inside keeps the rmdir EBUSY).
int sweep(const Host& h, const std::string& parent, const std::set<std::string>& keep, int& processes, int& left);

// Shared helpers (cgroup.cc)
bool writeFile(const std::string& path, const std::string& value, Error& err, const char* stage);
bool readFile(const std::string& path, std::string& out);
uint64_t readKey(const std::string& path, const char* key);  // "key N" line; 0 if absent
// Several keys of one file in one read: values[i] for keys[i] (0 if absent).
void readKeys(const std::string& path, std::initializer_list<const char*> keys, uint64_t* values);
uint64_t readU64(const std::string& path);
bool writeMemory(bool v2, const std::string& dir, uint64_t bytes, bool memsw, Error& err);
// v1: a group's TCP socket buffers bounded (and so accounted) by `bytes`; none of this on v2, where
// memory.max covers them.
bool writeTcpMemoryV1(const std::string& dir, uint64_t bytes, Error& err);
bool writePids(bool v2, const std::string& dir, uint64_t pids, Error& err);
bool writeCpu(bool v2, const std::string& dir, double cpus, Error& err);
// A running job's CPU weight among its siblings, in v1 cpu.shares units (kCpuSharesDefault = the
// kernel's default; 2..262144); on v2 cpu.weight scaled to match (100 for 1024; 1..10000).
constexpr uint32_t kCpuSharesDefault = 1024;
bool writeCpuShares(const Group& g, uint32_t shares, Error& err);
std::vector<int> readProcs(const std::string& dir);
uint64_t inodeOf(const std::string& path);                   // 0 if it cannot be stat()ed
std::vector<std::string> subdirs(const std::string& dir);  // its directories' names (none if unreadable)
bool removeDir(const std::string& dir, Error& err);  // rmdir with a short retry on EBUSY

namespace v1 {
void plan(const Host& h, const std::string& parent, const std::string& id, Group& g);
bool create(const Host& h, const std::string& parent, const spec::Limits& l, Group& g, Error& err);
// Pooled setups (zygote.h): the group made ahead with the slot's last job's limits, then renamed to
// the job's name and given its limits when the job arrives.
bool createDirs(const Host& h, const std::string& parent, Group& g, Error& err);
bool rename(Group& from, Group& to, Error& err);
bool writeLimits(const Host& h, const spec::Limits& l, const Group& g, Error& err);
bool changeLimits(const Host& h, const spec::Limits& from, const spec::Limits& to, const Group& g, Error& err);
bool limitParent(const Host& h, const std::string& parent, uint64_t memoryBytes, uint64_t pids, Error& err);
int killAll(const Group& g);
int sweep(const Host& h, const std::string& parent, const std::set<std::string>& keep, int& processes, int& left);
}  // namespace v1
namespace v2 {
void plan(const Host& h, const std::string& parent, const std::string& id, Group& g);
bool create(const Host& h, const std::string& parent, const spec::Limits& l, Group& g, Error& err);
bool changeLimits(const Host& h, const spec::Limits& from, const spec::Limits& to, const Group& g, Error& err);
bool limitParent(const Host& h, const std::string& parent, uint64_t memoryBytes, uint64_t pids, Error& err);
int killAll(const Group& g);
int sweep(const Host& h, const std::string& parent, const std::set<std::string>& keep, int& processes, int& left);
}  // namespace v2

}  // namespace sbx::cgroup
