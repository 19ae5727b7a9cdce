// sbx-init's side of init_config.h: the config packet the launcher sent (proto::InitConfig, then
// groups[ngroups], filter[nfilter], cwd bytes), checked as a whole and split in place. Header only:
// sbx-init (musl) and the sanitizer harness (test/sanitize/init_config_fuzz.cc) include it.
#pragma once
#include <linux/filter.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "error.h"
#include "proto.h"

namespace sbx::init_config {

struct Config {
  const proto::InitConfig* h;
  const uint32_t* groups;
  const struct sock_filter* filter;
  char cwd[4096];
};

// `buf[0..n)`: one packet, `buf` aligned for InitConfig. `c` points into `buf` (the cwd is copied).
inline bool parse(const unsigned char* buf, size_t n, Config& c, Error& err) {
  if (n < sizeof(proto::InitConfig)) return fail(err, "init-config", "recv", "", EPROTO);
  c.h = reinterpret_cast<const proto::InitConfig*>(buf);
  const size_t groupBytes = (size_t)c.h->ngroups * 4;
  const size_t need = sizeof *c.h + groupBytes + (size_t)c.h->nfilter * sizeof(struct sock_filter) + c.h->cwdLen;
  if (c.h->magic != proto::kMagic || n != need || c.h->cwdLen >= sizeof c.cwd || c.h->ngroups > 64)
    return fail(err, "init-config", "recv", "", EPROTO);
  c.groups = reinterpret_cast<const uint32_t*>(buf + sizeof *c.h);
  c.filter = reinterpret_cast<const struct sock_filter*>(buf + sizeof *c.h + groupBytes);
  memcpy(c.cwd, buf + need - c.h->cwdLen, c.h->cwdLen);
  c.cwd[c.h->cwdLen] = 0;
  return true;
}

}  // namespace sbx::init_config
