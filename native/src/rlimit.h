// Resource limits (P1, P23): set explicitly, never inherited from Node (which raises NOFILE).
#pragma once
#include "error.h"
#include "proto.h"

namespace sbx::rlimit {

bool applyInInit(const proto::InitConfig& c, Error& err);

}  // namespace sbx::rlimit
