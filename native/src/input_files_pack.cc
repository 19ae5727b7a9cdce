#include "input_files_pack.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "full_io.h"
#include "input_files.h"

namespace sbx::input_files {
namespace {

// Appends `n` bytes at `off` of the memfd being filled.
bool append(int fd, const void* p, size_t n, uint64_t& off, Error& err) {
  if (int e = pwriteFull(fd, p, n, off)) return fail(err, "files", "write", "memfd", e);
  off += n;
  return true;
}

}  // namespace

bool hasPayload(const spec::Spec& s) { return !s.files.empty() || !s.outputFiles.empty(); }

bool pack(const spec::Spec& s, Fd& out, Error& err) {
  out.reset();
  if (!hasPayload(s)) return true;
  Fd mem((int)syscall(SYS_memfd_create, "sbx-files", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!mem.valid()) return fail(err, "files", "memfd_create", "", errno);
  uint64_t off = 0;
  for (const auto& f : s.files) {
    Record r{kMagic, (uint32_t)f.path.size(), f.mode, 0, (uint64_t)f.data.size()};
    RETURN_ON_FAILURE(append(mem.get(), &r, sizeof r, off, err) && append(mem.get(), f.path.data(), f.path.size(), off, err) &&
                      append(mem.get(), f.data.data(), f.data.size(), off, err));
  }
  for (const auto& pattern : s.outputFiles) {
    Record r{kCollectMagic, (uint32_t)pattern.size(), 0, 0, s.outputFilesBytes};
    RETURN_ON_FAILURE(append(mem.get(), &r, sizeof r, off, err) && append(mem.get(), pattern.data(), pattern.size(), off, err));
  }
  // Read-only from here on: sbx-init reads it with pread, nothing may change it under it.
  if (fcntl(mem.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0)
    return fail(err, "files", "fcntl(F_ADD_SEALS)", "memfd", errno);
  out = std::move(mem);
  return true;
}

}  // namespace sbx::input_files
