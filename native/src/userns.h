// User namespaces (P9): one per worker slot, mapping container ids 0..65535 to the host range
// uidBase + slot * 65536 (same for gids). Created once per slot by the launcher and kept as an fd;
// sbx-init joins it (setns) before dropping privileges, and the setup child idmaps the image
// layers to it, so files owned by root in the image are owned by the job's root.
#pragma once
#include <stdint.h>
#include "error.h"

namespace sbx::userns {

constexpr uint32_t kRange = 65536;

// The user namespace fd for `slot` (O_CLOEXEC, >= child::kMinFd), created on first use; owned by
// this module for the process lifetime (the caller borrows it).
bool slotFd(uint32_t uidBase, uint32_t slot, int& fd, Error& err);

}  // namespace sbx::userns
