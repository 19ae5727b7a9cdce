// Scheduling of the job's processes (P1) and of the launcher's background threads.
//
// A job's processes run SCHED_BATCH at nice 0 with the default util clamps and no I/O priority,
// whatever the worker runs at. Pooled setups (zygote.h) are made, and wait, at SCHED_IDLE: the
// maker thread runs at it and its setups inherit it; the launcher gives a setup the job's policy
// when a job takes it, before the job message. A CPU that runs only idle-policy tasks counts as
// idle when the scheduler places a waking task, and an idle-policy task gives way at once to any
// other: making the slot's next setups no longer holds up the job that runs meanwhile (its pid 1,
// woken by the job message, used to wait for a CPU behind the maker).
#pragma once
#include <sys/types.h>

#include "error.h"

namespace sbx::sched {

enum class Policy { kJob, kIdle };

// For `pid` (0: the calling thread), raw system calls only (safe in the setup child). kJob: the
// P1 reset (child.cc); a positive nice the caller may not lower is kept.
bool set(pid_t pid, Policy p, Error& err);
// Whether this process may raise a task from SCHED_IDLE back to the job's policy (CAP_SYS_NICE);
// without it, setups are made at the job's policy.
bool canRaise();

}  // namespace sbx::sched
