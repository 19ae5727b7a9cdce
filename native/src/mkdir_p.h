// sbx-init's `mkdir -p` (input files' parent directories, a missing workdir): each missing
// directory of `path` made 0755 as the calling (the job's) user; existing ones are left as they are.
// `path` is modified while it works and restored; on failure it is cut after the directory that
// could not be made (for the error) and that mkdir's errno is returned. Returns 0 on success.
#pragma once
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

namespace sbx {

// Every parent of the last component, and with `andLast` the last one too.
inline int mkdirP(char* path, bool andLast) {
  if (path[0] == 0) return 0;
  char* end = path + strlen(path);
  for (char* p = path + 1;; p++) {
    if (p < end && *p != '/') continue;
    if (p == end && !andLast) return 0;
    if (p[-1] != '/') {  // "a//b", and a trailing '/'
      char saved = *p;
      *p = 0;
      if (mkdir(path, 0755) != 0 && errno != EEXIST) return errno;  // path cut here: names it
      *p = saved;
    }
    if (p == end) return 0;
  }
}

}  // namespace sbx
