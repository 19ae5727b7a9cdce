// The configuration the launcher sends sbx-init (proto::InitConfig + groups + seccomp filter + cwd):
// everything sbx-init needs to drop the job's privileges. A pooled setup drops them with the config
// of the spec it was made for, so a job may take it only if its own config is byte for byte the same.
#pragma once
#include <string>

#include "error.h"
#include "spec.h"

namespace sbx::init_config {

bool build(const spec::Spec& s, const spec::Options& o, std::string& out, Error& err);

}  // namespace sbx::init_config
