#include "input_files_pack.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>

#include "input_files.h"

namespace sbx::input_files {
namespace {

bool writeAll(int fd, const char* p, size_t n, Error& err) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return fail(err, "files", "write", "memfd", errno);
    p += w;
    n -= (size_t)w;
  }
  return true;
}

}  // namespace

bool hasPayload(const spec::Spec& s) { return !s.files.empty() || !s.outputFiles.empty(); }

bool pack(const spec::Spec& s, Fd& out, Error& err) {
  out.reset();
  if (!hasPayload(s)) return true;
  Fd mem((int)syscall(SYS_memfd_create, "sbx-files", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!mem.valid()) return fail(err, "files", "memfd_create", "", errno);
  for (const auto& f : s.files) {
    Record r{kMagic, (uint32_t)f.path.size(), f.mode, 0, (uint64_t)f.data.size()};
    RETURN_ON_FAILURE(writeAll(mem.get(), reinterpret_cast<const char*>(&r), sizeof r, err));
    RETURN_ON_FAILURE(writeAll(mem.get(), f.path.data(), f.path.size(), err));
    RETURN_ON_FAILURE(writeAll(mem.get(), f.data.data(), f.data.size(), err));
  }
  for (const auto& pattern : s.outputFiles) {
    Record r{kCollectMagic, (uint32_t)pattern.size(), 0, 0, s.outputFilesBytes};
    RETURN_ON_FAILURE(writeAll(mem.get(), reinterpret_cast<const char*>(&r), sizeof r, err));
    RETURN_ON_FAILURE(writeAll(mem.get(), pattern.data(), pattern.size(), err));
  }
  // Read-only from here on: sbx-init reads it with pread, nothing may change it under it.
  if (fcntl(mem.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0)
    return fail(err, "files", "fcntl(F_ADD_SEALS)", "memfd", errno);
  out = std::move(mem);
  return true;
}

}  // namespace sbx::input_files
