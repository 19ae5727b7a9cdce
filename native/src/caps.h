// Capabilities (P19): empty bounding, inheritable and ambient sets; permitted/effective = keep.
// Runs in sbx-init before the command is forked.
#pragma once
#include <stdint.h>
#include "error.h"

namespace sbx::caps {

// Before changing uid: lock securebits (NOROOT: uid 0 gets no caps from execve; no ambient raise),
// drop every capability not in `keep` from the bounding set, clear ambient.
bool dropBoundingInInit(uint64_t keep, Error& err);
// After changing uid: permitted = effective = keep, inheritable = 0.
bool setFinalInInit(uint64_t keep, Error& err);

}  // namespace sbx::caps
