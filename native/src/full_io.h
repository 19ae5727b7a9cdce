// Whole reads and writes at an offset, retrying EINTR and short transfers: the memfds of a job's
// files (input_files.h, output_files.h), in the launcher and in sbx-init alike. Each returns 0, or the
// errno that stopped it (EPROTO: the file ended first; EIO: a write that wrote nothing).
#pragma once
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

namespace sbx {

inline int preadFull(int fd, void* buf, size_t len, uint64_t off) {
  char* p = static_cast<char*>(buf);
  while (len > 0) {
    ssize_t n = pread(fd, p, len, (off_t)off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? errno : EPROTO;
    p += n, len -= (size_t)n, off += (uint64_t)n;
  }
  return 0;
}

inline int pwriteFull(int fd, const void* buf, size_t len, uint64_t off) {
  const char* p = static_cast<const char*>(buf);
  while (len > 0) {
    ssize_t n = pwrite(fd, p, len, (off_t)off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? errno : EIO;
    p += n, len -= (size_t)n, off += (uint64_t)n;
  }
  return 0;
}

}  // namespace sbx
