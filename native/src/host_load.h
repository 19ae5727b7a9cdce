// Whether the CPUs this process may run on have time to spare, for work done ahead of need (a
// pooled setup, zygote.h). Made on idle CPU, a setup takes its work off the next launch's path;
// made while every CPU is busy, it only adds to the work: a pooled launch costs the machine more
// CPU than a direct one (the maker's own steps, the groups' renames, the job message, more setups
// alive at once), and at concurrency 16 every launch direct did 3–9 % more jobs per second
// (native/BENCHMARKS.md, twenty-sixth session).
#pragma once

namespace sbx::host_load {

// /proc/stat counts in clock ticks of 10 ms: over a quarter second two CPUs give 50 of them, so a
// share is known to 2 %. Calls within a window get the last window's share.
constexpr long kWindowMs = 250;

// The share of time (0..1) the CPUs in this process's affinity mask were idle (idle + iowait) over
// the last completed window; 1 before the first window has completed, or without /proc/stat.
// Thread-safe.
double idleShare();

}  // namespace sbx::host_load
