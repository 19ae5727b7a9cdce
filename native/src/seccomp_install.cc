#include "seccomp_install.h"

#include <errno.h>
#include <linux/seccomp.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace sbx::seccomp {

bool installInInit(const struct sock_filter* insns, uint32_t n, Error& err) {
  struct sock_fprog prog = {(unsigned short)n, const_cast<struct sock_filter*>(insns)};
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) return fail(err, "seccomp", "seccomp", "", errno);
  return true;
}

}  // namespace sbx::seccomp
