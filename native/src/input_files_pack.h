// Launcher side of the job's payload for sbx-init (input files, input_files.h; output patterns,
// output_files.h): the records in one memfd.
#pragma once
#include <vector>
#include "error.h"
#include "fd.h"
#include "spec.h"

namespace sbx::input_files {

// A memfd (O_CLOEXEC, sealed against every change) holding the spec's files, then its output
// patterns as collect records; `out` stays invalid when there is neither.
bool pack(const spec::Spec& s, Fd& out, Error& err);

// Whether the job has anything for that memfd.
bool hasPayload(const spec::Spec& s);

}  // namespace sbx::input_files
