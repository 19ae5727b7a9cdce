// Credentials (P21): supplementary groups, then gid, then uid, exactly as given.
#pragma once
#include <stdint.h>
#include "error.h"

namespace sbx::user {

bool setCredsInInit(uint32_t uid, uint32_t gid, const uint32_t* groups, uint32_t ngroups, Error& err);

}  // namespace sbx::user
