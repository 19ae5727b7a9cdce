// Takes inotify instances until the kernel refuses one (or `max` of them), prints how many it made
// and why it stopped, then holds them for `hold` seconds (native/test/launcher.test.ts: a job's
// per-user counts are its slot's, not host root's).
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <unistd.h>

int main(int argc, char** argv) {
  int max = argc > 1 ? atoi(argv[1]) : 1000, hold = argc > 2 ? atoi(argv[2]) : 0;
  int made = 0, why = 0;
  for (; made < max; made++) {
    if (inotify_init1(IN_CLOEXEC) < 0) {
      why = errno;
      break;
    }
  }
  printf("made %d%s%s\n", made, why ? ": " : "", why ? strerror(why) : "");
  fflush(stdout);
  sleep(hold);
  return 0;
}
