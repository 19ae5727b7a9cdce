#include "user.h"

#include <errno.h>
#include <grp.h>
#include <unistd.h>

namespace sbx::user {

bool setCredsInInit(uint32_t uid, uint32_t gid, const uint32_t* groups, uint32_t ngroups, Error& err) {
  gid_t g[64];
  for (uint32_t i = 0; i < ngroups && i < 64; i++) g[i] = groups[i];
  if (setgroups(ngroups, g) != 0) return fail(err, "credentials", "setgroups", "", errno, errno == EINVAL ? kInvalidSpec : kSystem);
  if (setresgid(gid, gid, gid) != 0) return fail(err, "credentials", "setresgid", "", errno, errno == EINVAL ? kInvalidSpec : kSystem);
  if (setresuid(uid, uid, uid) != 0) return fail(err, "credentials", "setresuid", "", errno, errno == EINVAL ? kInvalidSpec : kSystem);
  return true;
}

}  // namespace sbx::user
