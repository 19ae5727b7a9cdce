// What this host offers the launcher (probeHost() in index.ts): the cgroup mode, one sentence per
// missing piece that stops jobs from running, and the optional features jobs use where present.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "cgroup.h"

namespace sbx::host {

struct Probe {
  cgroup::Mode cgroup = cgroup::Mode::kNone;
  std::vector<std::string> missing;                  // human sentences; empty = jobs can run
  std::vector<std::pair<const char*, bool>> features;  // name -> present, in the reported order
};

// Looks at the host each time it is called (cgroup detection itself is cached by cgroup::host()).
Probe probe();

}  // namespace sbx::host
