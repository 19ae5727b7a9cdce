#include "output_files.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "full_io.h"
#include "input_files.h"
#include "proto.h"

namespace sbx::output_files {
namespace {

char gPatterns[kMaxPatterns][input_files::kMaxPath + 1];
uint32_t gCount = 0;
uint64_t gBudget = 0;
alignas(16) char gCopy[64 * 1024];

struct Sink {
  int fd;
  uint64_t off = 0;
  uint64_t left;  // data budget
  uint32_t files = 0;
  bool ok = true;
};

// The paths already collected (FNV-1a of each), so that a file two patterns match (a.txt and *.txt)
// is collected once and spends the budget once. A collision only leaves out a file of the job's own.
uint64_t gSeen[kMaxFiles + kMaxPatterns];
uint32_t gSeenCount = 0;

uint64_t pathHash(const char* path) {
  uint64_t h = 1469598103934665603ull;
  for (const unsigned char* p = (const unsigned char*)path; *p; p++) h = (h ^ *p) * 1099511628211ull;
  return h;
}

// Whether `path` was collected before; records it if not.
bool seenBefore(const char* path) {
  const uint64_t h = pathHash(path);
  for (uint32_t i = 0; i < gSeenCount; i++)
    if (gSeen[i] == h) return true;
  if (gSeenCount < sizeof gSeen / sizeof gSeen[0]) gSeen[gSeenCount++] = h;
  return false;
}

bool writeAt(Sink& s, const void* p, size_t n, uint64_t off) {
  if (s.ok && pwriteFull(s.fd, p, n, off) != 0) s.ok = false;
  return s.ok;
}

// The header and path of one record (its `kept` data bytes, if any, are already written after them).
void record(Sink& s, const char* path, uint32_t flags, uint64_t size, uint64_t kept) {
  OutRecord r{kMagic, (uint32_t)strlen(path), flags, 0, size, kept};
  writeAt(s, &r, sizeof r, s.off);
  writeAt(s, path, r.pathLen, s.off + sizeof r);
  s.off += sizeof r + r.pathLen + kept;
  s.files++;
}

// One matched path: a regular file is read (up to what is left of the budget) behind its header.
void collectOne(Sink& s, const char* path) {
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ELOOP) record(s, path, kNotRegular, 0, 0);
    else record(s, path, kUnreadable, (uint64_t)errno, 0);
    return;
  }
  struct stat st{};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    bool dir = S_ISDIR(st.st_mode);
    close(fd);
    if (!dir) record(s, path, kNotRegular, 0, 0);  // a directory a pattern matched is not a file: left out
    return;
  }
  const uint32_t pathLen = (uint32_t)strlen(path);
  const uint64_t dataOff = s.off + sizeof(OutRecord) + pathLen;
  uint64_t kept = 0, size = 0;
  int readErr = 0;
  for (;;) {
    ssize_t n = read(fd, gCopy, sizeof gCopy);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n < 0) readErr = errno;
      break;
    }
    size += (uint64_t)n;
    uint64_t take = (uint64_t)n < s.left ? (uint64_t)n : s.left;
    if (take && !writeAt(s, gCopy, (size_t)take, dataOff + kept)) break;
    kept += take;
    s.left -= take;
    if (s.left == 0) {  // the budget is spent: the rest is not read, its size is the file's
      if ((uint64_t)st.st_size > size) size = (uint64_t)st.st_size;
      break;
    }
  }
  close(fd);
  if (readErr) {
    s.left += kept;  // what was written of it is dropped
    return record(s, path, kUnreadable, (uint64_t)readErr, 0);
  }
  record(s, path, kept < size ? (uint32_t)kTruncated : 0u, size, kept);
}

void collectPattern(Sink& s, const char* pattern) {
  glob_t g;
  memset(&g, 0, sizeof g);
  int rc = glob(pattern, 0, nullptr, &g);
  if (rc == GLOB_NOMATCH || (rc == 0 && g.gl_pathc == 0)) {
    record(s, pattern, kNoMatch, 0, 0);
  } else if (rc != 0) {
    record(s, pattern, kUnreadable, (uint64_t)(rc == GLOB_NOSPACE ? ENOMEM : EIO), 0);
  } else {
    for (size_t i = 0; i < g.gl_pathc && s.ok; i++) {
      if (seenBefore(g.gl_pathv[i])) continue;  // an earlier pattern matched it: collected once
      if (s.files >= kMaxFiles) {
        record(s, pattern, kTooMany, 0, 0);
        break;
      }
      collectOne(s, g.gl_pathv[i]);
    }
  }
  globfree(&g);
}

}  // namespace

bool addPattern(const char* pattern, uint32_t len, uint64_t budget) {
  if (gCount >= kMaxPatterns || len == 0 || len > input_files::kMaxPath || memchr(pattern, 0, len)) return false;
  memcpy(gPatterns[gCount], pattern, len);
  gPatterns[gCount][len] = 0;
  gCount++;
  gBudget = budget;
  return true;
}

bool wanted() { return gCount > 0; }

void collectAndSend(int syncFd) {
  Sink s{(int)syscall(SYS_memfd_create, "sbx-output", MFD_CLOEXEC), 0, gBudget};
  if (s.fd < 0) return;
  for (uint32_t i = 0; i < gCount && s.ok && s.files < kMaxFiles + kMaxPatterns; i++) collectPattern(s, gPatterns[i]);
  if (s.ok) {
    proto::Msg m{};
    m.tag = 'O';
    proto::FdPacket p;
    proto::packFd(p, &m, sizeof m, s.fd);
    sendmsg(syncFd, &p.mh, MSG_NOSIGNAL);
  }
  close(s.fd);
}

}  // namespace sbx::output_files
