// The job message a pooled setup (zygote.h) waits for in sbx-init: argv and env, in one
// SOCK_SEQPACKET packet that also carries the job's stdin/stdout/stderr (SCM_RIGHTS). The setup
// already made the job's mounts (for its image), pivoted and dropped its privileges; the launcher
// sets the hostname itself. With kHasFiles a fourth descriptor follows: the job's files payload
// (input files and output patterns, input_files.h). Encoded by the launcher, decoded (bounds-checked) by sbx-init.
//
//   Header | uint32 argvOff[nargv] | uint32 envOff[nenv] | strings (NUL-terminated)
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <string.h>

namespace sbx::jobmsg {

constexpr uint32_t kMagic = 0x53425a34;  // "SBZ4"
constexpr uint32_t kHasFiles = 1u << 0;   // Header.flags
constexpr size_t kMaxBytes = 60 * 1024;  // a larger job (huge env) takes the cold path
constexpr size_t kMaxStrings = 4096;     // argv + env entries

struct Header {
  uint32_t magic, size, nargv, nenv, flags;
};

// The decoded message: pointers into the buffer it was decoded from.
struct Job {
  char* argv[kMaxStrings + 2];  // {"sbx-init", command..., NULL}
  char* env[kMaxStrings + 1];
  uint32_t flags;
};

// Validate and decode `buf[0..n)`.
inline bool decode(char* buf, size_t n, Job& j) {
  if (n < sizeof(Header) || buf[n - 1] != 0) return false;  // every offset < n ends in a NUL
  Header h;
  memcpy(&h, buf, sizeof h);
  if (h.magic != kMagic || h.size != n || h.nargv < 1 || h.nargv + h.nenv > kMaxStrings || (h.flags & ~kHasFiles)) return false;
  j.flags = h.flags;
  size_t offs = sizeof h + ((size_t)h.nargv + h.nenv) * 4;
  if (offs > n) return false;
  static char kName[] = "sbx-init";
  j.argv[0] = kName;
  for (uint32_t i = 0; i < h.nargv + h.nenv; i++) {
    uint32_t off;
    memcpy(&off, buf + sizeof h + i * 4, 4);
    if (off < offs || off >= n) return false;
    if (i < h.nargv) j.argv[1 + i] = buf + off;
    else j.env[i - h.nargv] = buf + off;
  }
  j.argv[1 + h.nargv] = nullptr;
  j.env[h.nenv] = nullptr;
  return true;
}

}  // namespace sbx::jobmsg
