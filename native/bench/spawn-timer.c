// Times `argv...` N times: vfork + execvp + waitpid, CLOCK_MONOTONIC, stdout/stdin to /dev/null.
// SPAWN_GAP_US=n: sleep n µs before each run (not timed; launcher-bench.ts --spaced).
// Prints {"times":[ms...],"failures":n}. Compiled by launcher-bench.ts (gcc -O2).
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  int n = atoi(argv[1]), failures = 0;
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  const char* gap = getenv("SPAWN_GAP_US");
  long gapUs = gap ? atol(gap) : 0;
  printf("{\"times\":[");
  for (int i = 0; i < n; i++) {
    if (gapUs > 0) {
      struct timespec ts = {gapUs / 1000000, (gapUs % 1000000) * 1000};
      nanosleep(&ts, NULL);
    }
    double t0 = now_ms();
    pid_t pid = vfork();
    if (pid == 0) {
      dup2(devnull, 0);
      dup2(devnull, 1);
      execvp(argv[2], argv + 2);
      _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    double dt = now_ms() - t0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) failures++;
    printf("%s%.4f", i ? "," : "", dt);
  }
  printf("],\"failures\":%d,\"lastError\":\"\"}\n", failures);
  return 0;
}
