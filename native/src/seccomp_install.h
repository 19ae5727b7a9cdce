// Seccomp (P22), sbx-init's side: installs the filter the launcher built (seccomp.h) as the last
// step before it forks the command.
#pragma once
#include <linux/filter.h>
#include <stdint.h>
#include "error.h"

namespace sbx::seccomp {

bool installInInit(const struct sock_filter* insns, uint32_t n, Error& err);

}  // namespace sbx::seccomp
