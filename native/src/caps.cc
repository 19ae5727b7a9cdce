#include "caps.h"

#include <errno.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace sbx::caps {

bool dropBoundingInInit(uint64_t keep, Error& err) {
  unsigned long bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE |
                       SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED | SECBIT_KEEP_CAPS_LOCKED;
  if (prctl(PR_SET_SECUREBITS, bits, 0, 0, 0) != 0) return fail(err, "caps", "prctl(PR_SET_SECUREBITS)", "", errno);
  for (int cap = 0; cap < 64; cap++) {
    if (keep & (1ULL << cap)) continue;
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
      if (errno == EINVAL) break;  // past CAP_LAST_CAP
      return fail(err, "caps", "prctl(PR_CAPBSET_DROP)", "", errno);
    }
  }
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
    return fail(err, "caps", "prctl(PR_CAP_AMBIENT)", "", errno);
  return true;
}

bool setFinalInInit(uint64_t keep, Error& err) {
  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct d[2] = {};
  d[0].permitted = d[0].effective = (uint32_t)keep;
  d[1].permitted = d[1].effective = (uint32_t)(keep >> 32);
  if (syscall(SYS_capset, &h, d) != 0) return fail(err, "caps", "capset", "", errno);
  return true;
}

}  // namespace sbx::caps
