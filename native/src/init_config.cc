#include "init_config.h"

#include <errno.h>
#include <linux/filter.h>
#include <vector>

#include "proto.h"
#include "seccomp.h"

namespace sbx::init_config {

bool build(const spec::Spec& s, const spec::Options& o, std::string& out, Error& err) {
  proto::InitConfig c{};
  c.magic = proto::kMagic;
  c.flags = proto::kDropCaps | (o.seccomp ? (uint32_t)proto::kSeccomp : 0u) | (o.userns ? (uint32_t)proto::kUserns : 0u) |
            (o.coreScheduling ? (uint32_t)proto::kCoreSched : 0u);
  c.uid = s.uid;
  c.gid = s.gid;
  c.ngroups = (uint32_t)s.groups.size();
  std::vector<struct sock_filter> filter;
  if (o.seccomp) filter = seccomp::build(o.denyFileLocks);
  c.nfilter = (uint32_t)filter.size();
  c.cwdLen = (uint32_t)s.cwd.size();
  c.oomScoreAdj = 1000;  // P29: the job dies first under global pressure
  c.nofile = s.limits.openFiles;
  c.cpuSeconds = s.limits.cpuTimeMs ? (s.limits.cpuTimeMs + 999) / 1000 : 0;
  c.fsize = s.limits.diskBytes;
  if (s.tty) {
    c.flags |= proto::kTty;
    c.ttyRows = s.ttyRows;
    c.ttyCols = s.ttyCols;
  }
  out.assign(reinterpret_cast<const char*>(&c), sizeof c);
  out.append(reinterpret_cast<const char*>(s.groups.data()), s.groups.size() * 4);
  out.append(reinterpret_cast<const char*>(filter.data()), filter.size() * sizeof(struct sock_filter));
  out.append(s.cwd);
  if (out.size() > proto::kMaxConfigBytes) return fail(err, "init-config", "", "", E2BIG);
  return true;
}

}  // namespace sbx::init_config
