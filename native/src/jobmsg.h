// The job message a pooled setup (zygote.h) waits for in sbx-init: the hostname, argv and env, in
// one SOCK_SEQPACKET packet that also carries the job's stdin/stdout/stderr (SCM_RIGHTS). The
// setup already made the job's mounts (for its image) and pivoted. Encoded by the launcher,
// decoded (bounds-checked) by sbx-init.
//
//   Header | uint32 argvOff[nargv] | uint32 envOff[nenv] | strings (NUL-terminated)
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <string.h>

namespace sbx::jobmsg {

constexpr uint32_t kMagic = 0x53425a32;  // "SBZ2"
constexpr size_t kMaxBytes = 60 * 1024;  // a larger job (huge env) takes the cold path
constexpr size_t kMaxStrings = 4096;     // argv + env entries
constexpr uint32_t kNone = 0xffffffffu;  // absent string

struct Header {
  uint32_t magic, size, nargv, nenv, hostname;
};

// The decoded message: pointers into the buffer it was decoded from.
struct Job {
  const char* hostname = nullptr;
  char* argv[kMaxStrings + 2];  // {"sbx-init", command..., NULL}
  char* env[kMaxStrings + 1];
};

// Validate and decode `buf[0..n)`.
inline bool decode(char* buf, size_t n, Job& j) {
  if (n < sizeof(Header) || buf[n - 1] != 0) return false;  // every offset < n ends in a NUL
  Header h;
  memcpy(&h, buf, sizeof h);
  if (h.magic != kMagic || h.size != n || h.nargv < 1 || h.nargv + h.nenv > kMaxStrings) return false;
  size_t offs = sizeof h + ((size_t)h.nargv + h.nenv) * 4;
  if (offs > n) return false;
  auto str = [&](uint32_t off, const char*& out) {
    if (off == kNone) return out = nullptr, true;
    if (off < offs || off >= n) return false;
    out = buf + off;
    return true;
  };
  static char kName[] = "sbx-init";
  j.argv[0] = kName;
  for (uint32_t i = 0; i < h.nargv + h.nenv; i++) {
    uint32_t off;
    memcpy(&off, buf + sizeof h + i * 4, 4);
    const char* s;
    if (!str(off, s) || !s) return false;
    if (i < h.nargv) j.argv[1 + i] = const_cast<char*>(s);
    else j.env[i - h.nargv] = const_cast<char*>(s);
  }
  j.argv[1 + h.nargv] = nullptr;
  j.env[h.nenv] = nullptr;
  return str(h.hostname, j.hostname) && j.hostname;
}

}  // namespace sbx::jobmsg
