#include "host_probe.h"

#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fstream>

#include "fd.h"
#include "kernel.h"

namespace sbx::host {
namespace {

bool fileExists(const char* p) { return access(p, F_OK) == 0; }

bool filesystemAvailable(const char* fs) {
  std::ifstream f("/proc/filesystems");
  std::string line;
  while (std::getline(f, line))
    if (line.size() > strlen(fs) && line.compare(line.size() - strlen(fs), strlen(fs), fs) == 0 &&
        line[line.size() - strlen(fs) - 1] == '\t')
      return true;
  return false;
}

// P30 core scheduling (PR_SCHED_CORE, CONFIG_SCHED_CORE and SMT): GET on ourselves fails with
// EINVAL without the kernel option and ENODEV without SMT; jobs then run without a cookie.
bool coreScheduling() {
  unsigned long long cookie = 0;
  return prctl(PR_SCHED_CORE, PR_SCHED_CORE_GET, 0, PR_SCHED_CORE_SCOPE_THREAD, (unsigned long)&cookie) == 0;
}

bool pidfdOpen() { return Fd((int)syscall(SYS_pidfd_open, getpid(), 0)).valid(); }

bool userNamespaces() {
  std::string maxUserns;
  std::ifstream mu("/proc/sys/user/max_user_namespaces");
  std::getline(mu, maxUserns);
  return fileExists("/proc/self/ns/user") && atol(maxUserns.c_str()) > 0;
}

}  // namespace

Probe probe() {
  const cgroup::Host& h = cgroup::host();
  Probe p;
  p.cgroup = h.mode;
  p.missing = h.missing;
  bool overlay = filesystemAvailable("overlay");
  bool pidfd = pidfdOpen();
  bool userns = userNamespaces();
  // Idmapped mounts for overlay lower layers: Linux >= 5.19 (mount_setattr >= 5.12).
  bool idmap = kernel::version().atLeast(5, 19);
  p.features = {
      {"overlay", overlay},
      {"memsw", h.memsw},
      {"cgroupKill", h.cgroupKill},
      // P17: v1 devices controller mounted (v2: a BPF device program, checked when a job starts).
      {"devicesCgroup", h.mode == cgroup::Mode::kV2 || h.v1Devices},
      {"coreScheduling", coreScheduling()},
      {"pidfd", pidfd},
      {"closeRange", syscall(SYS_close_range, ~0U, ~0U, 0) == 0},
      {"clone3", true},  // used unconditionally; a failure is reported by launch()
      {"seccomp", fileExists("/proc/sys/kernel/seccomp/actions_avail")},
      {"userns", userns},
      {"idmappedMounts", idmap},
  };
  if (!overlay) p.missing.push_back("overlayfs not available");
  if (!pidfd) p.missing.push_back("pidfd_open not supported (Linux >= 5.3 needed)");
  if (getuid() != 0) p.missing.push_back("the launcher must run as root");
  // Needed by the default userns mode (launch with { userns: false } works without them).
  if (!userns) p.missing.push_back("user namespaces not available (user.max_user_namespaces = 0)");
  if (!idmap) p.missing.push_back("idmapped overlay layers need Linux >= 5.19");
  return p;
}

}  // namespace sbx::host
