// Launcher side of the job's input files (input_files.h): the records in one memfd for sbx-init.
#pragma once
#include <vector>
#include "error.h"
#include "fd.h"
#include "spec.h"

namespace sbx::input_files {

// A memfd (O_CLOEXEC, sealed against every change) holding `files` as records; `out` stays invalid
// when there are none.
bool pack(const std::vector<spec::InputFile>& files, Fd& out, Error& err);

}  // namespace sbx::input_files
