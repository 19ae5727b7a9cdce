// Launch phase timestamps (CLOCK_MONOTONIC ns) for `LaunchOptions.trace` (diagnostics and
// `npm run bench:launcher -- --phases`): the launcher and the setup child (which shares its memory)
// write them into the job's array; sbx-init sends its own in the 'X' and 'S' messages.
#pragma once
#include <stdint.h>
#include <time.h>
#include "sys.h"

namespace sbx::trace {

enum Point : int {
  kLaunch,          // launch() entered (JS thread)
  kPlanned,         // spec -> mount program, init config, cgroup plan
  kFdsOpen,         // pipes, sync socket, pooled net namespace
  kCloned,          // clone3 returned (pooled: the job message sent to the waiting sbx-init)
  kGoSent,          // cgroups made + limits written, "G" and the config sent: launch() returns
  kChildStart,      // setup child: first instruction
  kUnshared,        // mount/uts/ipc unshared, net namespace joined
  kMounted,         // mount program done (all but pivot_root)
  kGotGo,           // "G" read
  kJoined,          // cgroups joined
  kPivoted,         // cgroup namespace + pivot_root
  kExecInit,        // about to execveat sbx-init
  kInitStart,       // sbx-init main() (pooled: the job message received)
  kInitConfig,      // config read
  kInitDropped,     // privileges dropped (before seccomp)
  kInitSeccomp,     // seccomp filter installed
  kInitForked,      // sbx-init about to start the command (clone CLONE_VM | CLONE_VFORK)
  kInitExecOk,      // the clone returned: the command has exec'd (or failed to), and sbx-init got a CPU
                    // again: often only once the command has run and exited (kInitCmdExec is its start)
  kExecSeen,        // launcher handled 'X'
  kInitReaped,      // sbx-init woke for the command's SIGCHLD
  kExitSeen,        // launcher: pid 1's pidfd readable
  kReaped,          // waitid + usage + procs read
  kCgroupRemoved,   // job cgroups removed
  kReported,        // "exit" emitted to JS (promise resolved)
  kInitJobMounted,  // pooled: sbx-init ran the job's mounts + pivot_root + hostname
  kPoolReady,       // pooled: present (as launch + 1 ns) if the setup was ready and waiting
  kEnded,           // "ended" emitted to JS (status + usage known), before the cgroups are removed
  kInitCmdExec,     // sbx-init's command child: about to execve the command (written into sbx-init's memory)
  kCount
};

inline const char* const kNames[kCount] = {
    "launch", "planned", "fdsOpen", "cloned", "goSent", "childStart", "unshared", "mounted", "gotGo", "joined",
    "pivoted", "execInit", "initStart", "initConfig", "initDropped", "initSeccomp", "initForked", "initExecOk",
    "execSeen", "initReaped", "exitSeen", "reaped", "cgroupRemoved", "reported", "initJobMounted", "poolReady", "ended",
    "initCmdExec"};

// Async-signal-safe (raw syscall; the setup child may not use the vDSO through libc).
inline uint64_t now() {
  struct timespec ts;
  sys::call(__NR_clock_gettime, CLOCK_MONOTONIC, (long)&ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

inline void mark(uint64_t* t, Point p) {
  if (t) t[p] = now();
}

}  // namespace sbx::trace
