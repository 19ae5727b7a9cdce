#include "rlimit.h"

#include <errno.h>
#include <sys/resource.h>

namespace sbx::rlimit {
namespace {

// Only ever lower a limit: raising a hard limit needs CAP_SYS_RESOURCE (which the worker may lack).
bool set(int resource, const char* name, rlim_t soft, rlim_t hard, Error& err) {
  struct rlimit cur;
  if (getrlimit(resource, &cur) != 0) return fail(err, "rlimits", "getrlimit", name, errno);
  if (hard > cur.rlim_max) hard = cur.rlim_max;
  if (soft > hard) soft = hard;
  struct rlimit rl = {soft, hard};
  if (setrlimit(resource, &rl) != 0) return fail(err, "rlimits", "setrlimit", name, errno);
  return true;
}

}  // namespace

bool applyInInit(const proto::InitConfig& c, Error& err) {
  RETURN_ON_FAILURE(set(RLIMIT_NOFILE, "RLIMIT_NOFILE", c.nofile, c.nofile, err));
  RETURN_ON_FAILURE(set(RLIMIT_CORE, "RLIMIT_CORE", 0, 0, err));
  RETURN_ON_FAILURE(set(RLIMIT_MEMLOCK, "RLIMIT_MEMLOCK", 64 << 10, 64 << 10, err));
  RETURN_ON_FAILURE(set(RLIMIT_RTPRIO, "RLIMIT_RTPRIO", 0, 0, err));
  RETURN_ON_FAILURE(set(RLIMIT_MSGQUEUE, "RLIMIT_MSGQUEUE", 819200, 819200, err));
  RETURN_ON_FAILURE(set(RLIMIT_STACK, "RLIMIT_STACK", 8 << 20, RLIM_INFINITY, err));
  if (c.cpuSeconds) RETURN_ON_FAILURE(set(RLIMIT_CPU, "RLIMIT_CPU", c.cpuSeconds, c.cpuSeconds + 1, err));
  if (c.fsize) RETURN_ON_FAILURE(set(RLIMIT_FSIZE, "RLIMIT_FSIZE", c.fsize, c.fsize, err));
  if (c.nproc) RETURN_ON_FAILURE(set(RLIMIT_NPROC, "RLIMIT_NPROC", c.nproc, c.nproc, err));
  return true;
}

}  // namespace sbx::rlimit
