// Output files (the job request's `outputFiles`): collected inside the job by its own sbx-init once
// the command has ended, as the job's user under its seccomp filter, from patterns (glob(3): `*`,
// `?`, `[...]`; absolute or relative to the workdir). So only what the job's command itself could
// read is read (P56). The patterns arrive as collect records of the job's payload memfd
// (input_files.h); the files go back to the launcher in a memfd sbx-init makes, passed with an 'O'
// message just before the 'S' status:
//
//   OutRecord | path bytes (pathLen) | data bytes (kept)
//
// At most kMaxFiles records and `budget` data bytes in all: a file past the budget is kept in part
// (kTruncated). What is not collected says why (flags): a pattern that matched nothing, a file that
// is not a regular one (a symlink is not followed), one that could not be read.
#pragma once
#include <stddef.h>
#include <stdint.h>

namespace sbx::output_files {

constexpr uint32_t kMagic = 0x53424f31;  // "SBO1", at the start of every record
constexpr uint32_t kMaxPatterns = 32;
constexpr uint32_t kMaxFiles = 1000;

enum Flags : uint32_t {
  kTruncated = 1u << 0,    // the budget ran out: `kept` of `size` bytes
  kNoMatch = 1u << 1,      // the path is a pattern that matched nothing
  kNotRegular = 1u << 2,   // a symlink, FIFO, device or socket: not read
  kUnreadable = 1u << 3,   // open/read failed (`size` holds the errno)
  kTooMany = 1u << 4,      // past kMaxFiles matches: the rest of this pattern's matches are left out
};

struct OutRecord {
  uint32_t magic;
  uint32_t pathLen;
  uint32_t flags;
  uint32_t reserved;
  uint64_t size;  // the file's size as read (or an errno with kUnreadable)
  uint64_t kept;  // data bytes that follow the path
};

// sbx-init, while reading the payload memfd: remember one pattern (false if there are too many or
// it is too long) and the byte budget for all files.
bool addPattern(const char* pattern, uint32_t len, uint64_t budget);

// sbx-init, after the command ended: true when there is something to collect.
bool wanted();

// sbx-init: collect into a memfd and send it to the launcher ('O'). Best effort: a failure here
// (no memory for the memfd) sends nothing, and the job's outcome is reported as it is.
void collectAndSend(int syncFd);

}  // namespace sbx::output_files
