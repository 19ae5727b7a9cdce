// The job message a pooled setup (zygote.h) waits for in sbx-init: the per-job part of the mount
// program, the hostname, argv and env, in one SOCK_SEQPACKET packet that also carries the job's
// stdin/stdout/stderr (SCM_RIGHTS). Encoded by the launcher, decoded (bounds-checked) by sbx-init.
//
//   Header | OpRec[nops] | uint32 argvOff[nargv] | uint32 envOff[nenv] | strings (NUL-terminated)
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mnt_op.h"

namespace sbx::jobmsg {

constexpr uint32_t kMagic = 0x53425a31;  // "SBZ1"
constexpr size_t kMaxBytes = 60 * 1024;  // a larger job (huge env) takes the cold path
constexpr size_t kMaxOps = 256;
constexpr size_t kMaxStrings = 4096;     // argv + env entries
constexpr uint32_t kNone = 0xffffffffu;  // absent string

struct Header {
  uint32_t magic, size, nops, nargv, nenv, hostname;
};

struct OpRec {
  uint8_t kind, optional, userns, pad;  // userns: kIdmapLayer with the slot's user namespace (fd 4)
  uint32_t mode, uid, gid;
  uint64_t flags;
  uint32_t src, dst, fstype, data, stage;  // offsets into the message, or kNone
};

// The decoded message: pointers into the buffer it was decoded from.
struct Job {
  mnt::Op ops[kMaxOps];
  size_t nops = 0;
  const char* hostname = nullptr;
  char* argv[kMaxStrings + 2];  // {"sbx-init", command..., NULL}
  char* env[kMaxStrings + 1];
};

// Validate and decode `buf[0..n)`; `usernsFd` replaces the launcher's fd in idmap ops.
inline bool decode(char* buf, size_t n, int usernsFd, Job& j) {
  if (n < sizeof(Header) || buf[n - 1] != 0) return false;  // every offset < n ends in a NUL
  Header h;
  memcpy(&h, buf, sizeof h);
  if (h.magic != kMagic || h.size != n || h.nops > kMaxOps || h.nargv < 1 || h.nargv + h.nenv > kMaxStrings) return false;
  size_t recs = sizeof h + (size_t)h.nops * sizeof(OpRec);
  size_t offs = recs + ((size_t)h.nargv + h.nenv) * 4;
  if (offs > n) return false;
  auto str = [&](uint32_t off, const char*& out) {
    if (off == kNone) return out = nullptr, true;
    if (off < offs || off >= n) return false;
    out = buf + off;
    return true;
  };
  for (uint32_t i = 0; i < h.nops; i++) {
    OpRec r;
    memcpy(&r, buf + sizeof h + i * sizeof r, sizeof r);
    if (r.kind > (uint8_t)mnt::OpKind::kChown) return false;
    mnt::Op& o = j.ops[i];
    o = mnt::Op{(mnt::OpKind)r.kind, r.optional != 0, r.mode, (unsigned long)r.flags, nullptr, nullptr, nullptr, nullptr,
                nullptr, r.userns ? usernsFd : -1, r.uid, r.gid};
    if (!str(r.src, o.src) || !str(r.dst, o.dst) || !str(r.fstype, o.fstype) || !str(r.data, o.data) || !str(r.stage, o.stage) ||
        !o.stage)
      return false;
  }
  j.nops = h.nops;
  static char kName[] = "sbx-init";
  j.argv[0] = kName;
  for (uint32_t i = 0; i < h.nargv + h.nenv; i++) {
    uint32_t off;
    memcpy(&off, buf + recs + i * 4, 4);
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
