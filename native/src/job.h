// One running job, seen from the launcher: launch (clone + cgroup join + go), watch (pidfd and the
// sync socket on the libuv loop: no thread-pool thread is held), kill, and the exit path (reap,
// usage, kill leftovers, remove the cgroups, report).
#pragma once
#include <napi.h>
#include <uv.h>

#include <memory>
#include <string>
#include <vector>

#include "cgroup.h"
#include "child.h"
#include "mnt.h"
#include "spec.h"

namespace sbx::job {

struct Fds {
  int stdoutFd = -1, stderrFd = -1, stdinFd = -1;  // launcher ends (stdinFd -1: /dev/null)
  int listenFd = -1;                                 // spec.listenPort's listening socket (-1: none)
};

struct Job;

// Load sbx-init into a sealed memfd once (P3: the job never sees a writable host binary).
bool loadInit(const std::string& path, Error& err);

// Launch; `onEvent(kind, payload)` is called on the JS thread with kind "exec" | "error" | "exit".
Job* launch(Napi::Env env, const spec::Spec& s, const spec::Options& o, Napi::Function onEvent, int& pid,
            Fds& fds, Error& err);
bool kill(int handle);
// Jobs with outputFiles whose command runs: ask sbx-init ('K') to kill every other process of the
// job, collect the files and report; false otherwise (then kill()). The caller bounds how long.
bool stop(int handle);
// Send `sig` to the job's sbx-init, which forwards it to the command; false if the handle is unknown.
bool signal(int handle, int sig);
// A running job's usage now (cgroup::Live); false if the handle is unknown.
bool live(int handle, cgroup::Live& l);
// A running job's CPU weight (cgroup::writeCpuShares); false if the handle is unknown or the write failed (err).
bool setCpuShares(int handle, uint32_t shares, Error& err);
size_t liveJobs();
// Every cgroup directory of the jobs this process still runs (sweep() leaves them alone).
std::set<std::string> liveGroupDirs();
int handleOf(const Job* j);
// The job's cgroup directories (v1: one per hierarchy; v2: one): <parent>/<job id>, or on v2 the
// pooled setup's group it started in (<parent>/pool-<launcher pid>-<n>).
const std::vector<std::string>& groupDirsOf(const Job* j);

}  // namespace sbx::job
