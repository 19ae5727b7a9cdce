// tty.test.ts: what a tty job's command sees of its terminal. Prints one line per check.
#define _GNU_SOURCE  // strerrorname_np
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

static const char* res(int r) { return r == 0 ? "ok" : strerrorname_np(errno); }

int main(void) {
  char c = 'x';
  printf("tiocsti=%s\n", res(ioctl(0, TIOCSTI, &c)));
  char sub = 0;  // TIOCL_GETSHIFTSTATE-ish: any TIOCLINUX subcode
  printf("tioclinux=%s\n", res(ioctl(0, TIOCLINUX, &sub)));
  printf("isatty=%d,%d,%d\n", isatty(0), isatty(1), isatty(2));
  printf("sid_is_pid=%d\n", getsid(0) == getpid());
  printf("pgrp_is_fg=%d\n", tcgetpgrp(0) == getpgrp());
  printf("ttyname=%s\n", ttyname(0) ? ttyname(0) : "none");
  int maxfd = -1;
  for (int fd = 0; fd < 1024; fd++)
    if (fcntl(fd, F_GETFD) >= 0) maxfd = fd;
  printf("maxfd=%d\n", maxfd);
  fflush(stdout);
  return 0;
}
