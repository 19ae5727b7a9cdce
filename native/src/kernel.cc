#include "kernel.h"

#include <stdio.h>
#include <sys/utsname.h>

namespace sbx::kernel {

Version parse(const char* release) {
  Version v;
  sscanf(release, "%d.%d", &v.major, &v.minor);
  return v;
}

const Version& version() {
  static const Version v = [] {
    struct utsname u;
    return uname(&u) == 0 ? parse(u.release) : Version{};
  }();
  return v;
}

}  // namespace sbx::kernel
