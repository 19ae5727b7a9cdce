// One error shape for every fallible step: {errno, syscall, path, stage} (crun/nsjail convention).
// Plain old data so the setup child can fill it and send it over the sync socket as is.
#pragma once
#include <stdint.h>
#include "sys.h"

namespace sbx {

struct Error {
  int32_t err = 0;        // errno value (positive); 0 = no error
  int32_t kind = 0;       // ErrorKind
  char stage[32] = {};    // e.g. "overlay", "cgroup-create"
  char syscall[32] = {};  // e.g. "mount"
  char path[256] = {};    // the path or object involved, may be empty
};

enum ErrorKind : int32_t {
  kSystem = 0,           // a syscall failed: code = errno name
  kInvalidSpec = 1,      // the spec cannot be honoured (cwd missing, bad uid): code = invalid_spec
  kCommandNotFound = 2,  // execve of argv[0] failed with ENOENT/EACCES/ENOEXEC...
  kHost = 3,             // host lacks something: code = host_unsupported
};

// Fill `e` and return false, so callers can `return fail(...)`. Async-signal-safe.
static inline bool fail(Error& e, const char* stage, const char* syscall, const char* path, long err,
                        int32_t kind = kSystem) {
  e.err = (int32_t)(err < 0 ? -err : err);
  e.kind = kind;
  sys::scopy(e.stage, sizeof e.stage, stage);
  sys::scopy(e.syscall, sizeof e.syscall, syscall);
  sys::scopy(e.path, sizeof e.path, path);
  return false;
}

// An Error another process sent (a setup child, a job's pid 1: proto::Msg): its strings end within
// their arrays whatever it wrote there, so that reading them stops there too.
static inline void endStrings(Error& e) {
  e.stage[sizeof e.stage - 1] = 0;
  e.syscall[sizeof e.syscall - 1] = 0;
  e.path[sizeof e.path - 1] = 0;
}

}  // namespace sbx

// Run one step of a sequence; stop the sequence at the first failure (the step filled the Error).
#define RETURN_ON_FAILURE(expr) \
  do {                          \
    if (!(expr)) return false;  \
  } while (0)
