// Input files (the job request's `files`): written inside the job by its own sbx-init, after every
// privilege is dropped and the seccomp filter is in place, before the command starts. So a file's
// path is resolved in the job's mount namespace, under its root, with the job's credentials: a
// path or a symlink of the image can reach only what the job's command itself could write (P55).
//
// The launcher hands sbx-init one memfd holding the records, back to back:
//
//   Record | path bytes (pathLen, no NUL) | data bytes (size)
//
// A direct launch puts the memfd on fd kInitFilesFd and sets proto::kFiles in the config; a
// pooled one sends it as the job message's fourth descriptor (jobmsg.h kHasFiles).
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "error.h"

namespace sbx::input_files {

constexpr uint32_t kMagic = 0x53424631;  // "SBF1", at the start of every file record
// A collect record (output_files.h): path = a pattern to collect after the command, size = the byte
// budget for all collected files, no data.
constexpr uint32_t kCollectMagic = 0x53424331;  // "SBC1"
constexpr uint32_t kMaxPath = 4095;
constexpr uint32_t kMaxMode = 0777;

struct Record {
  uint32_t magic;
  uint32_t pathLen;
  uint32_t mode;  // permission bits, at most kMaxMode
  uint32_t reserved;
  uint64_t size;
};

// sbx-init: create (or truncate) each file of `fd`'s records, relative paths under the current
// directory (the job's workdir), missing parent directories made 0755; each file gets exactly its
// mode. Files are written in order (a later record for the same path wins); collect records are
// handed to output_files::addPattern. Closes `fd`.
bool writeInInit(int fd, Error& err);

}  // namespace sbx::input_files
