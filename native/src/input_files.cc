#include "input_files.h"
#include "full_io.h"
#include "mkdir_p.h"
#include "output_files.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

namespace sbx::input_files {
namespace {

alignas(16) char gPath[kMaxPath + 1];
alignas(16) char gCopy[64 * 1024];

// The job's view of what went wrong with one file: kInvalidSpec (the request cannot be honoured in
// this image: a read-only place, a directory in the way, no permission, the disk limit).
bool failFile(Error& err, const char* syscall, int e) { return fail(err, "files", syscall, gPath, e, kInvalidSpec); }

bool readAt(int fd, void* buf, size_t len, uint64_t off, Error& err) {
  int e = preadFull(fd, buf, len, off);
  return e == 0 || fail(err, "files", "pread", "", e);
}

bool writeOne(int src, const Record& r, uint64_t dataOff, Error& err) {
  if (int e = mkdirP(gPath, false)) return failFile(err, "mkdir", e);  // gPath names the directory
  // O_NOFOLLOW: a symlink at the path itself is refused (ELOOP), not written through.
  int fd = open(gPath, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return failFile(err, "open", errno);
  bool ok = fchmod(fd, r.mode) == 0 || failFile(err, "fchmod", errno);
  for (uint64_t done = 0; ok && done < r.size;) {
    size_t chunk = r.size - done < sizeof gCopy ? (size_t)(r.size - done) : sizeof gCopy;
    ok = readAt(src, gCopy, chunk, dataOff + done, err);
    if (int e = ok ? pwriteFull(fd, gCopy, chunk, done) : 0) ok = failFile(err, "write", e);
    done += chunk;
  }
  if (close(fd) != 0 && ok) ok = failFile(err, "close", errno);
  return ok;
}

}  // namespace

bool writeInInit(int fd, Error& err) {
  struct stat st;
  bool ok = fstat(fd, &st) == 0 || fail(err, "files", "fstat", "", errno);
  uint64_t off = 0, end = ok ? (uint64_t)st.st_size : 0;
  while (ok && off < end) {
    Record r;
    ok = readAt(fd, &r, sizeof r, off, err);
    if (!ok) break;
    off += sizeof r;
    const bool collect = r.magic == kCollectMagic;
    if ((r.magic != kMagic && !collect) || r.pathLen == 0 || r.pathLen > kMaxPath || r.mode > kMaxMode || r.pathLen > end - off ||
        (!collect && r.size > end - off - r.pathLen)) {
      ok = fail(err, "files", "read", "", EPROTO);
      break;
    }
    ok = readAt(fd, gPath, r.pathLen, off, err);
    gPath[ok ? r.pathLen : 0] = 0;
    if (ok && memchr(gPath, 0, r.pathLen)) ok = fail(err, "files", "read", "", EPROTO);
    off += r.pathLen;
    if (collect) {  // r.size: the budget, no data follows
      if (ok && !output_files::addPattern(gPath, r.pathLen, r.size)) ok = fail(err, "files", "read", "", EPROTO);
      continue;
    }
    ok = ok && writeOne(fd, r, off, err);
    off += r.size;
  }
  close(fd);
  return ok;
}

}  // namespace sbx::input_files
