// Fills loopback TCP send buffers that nobody reads: N connections to a listener of its own, each
// written to (non-blocking) until the kernel takes no more. Prints "buffered <bytes>" and how many
// connections it made (native/test/launcher.test.ts: TCP buffers count against the job's memory).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char buf[65536];

int main(int argc, char** argv) {
  int n = argc > 1 ? atoi(argv[1]) : 1000;
  memset(buf, 'x', sizeof buf);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(5555), .sin_addr.s_addr = htonl(0x7f000001)};
  int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(lfd, (struct sockaddr*)&a, sizeof a) || listen(lfd, 4096)) {
    perror("listen");
    return 1;
  }
  long long total = 0;
  int made = 0;
  for (int i = 0; i < n; i++) {
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (c < 0 || connect(c, (struct sockaddr*)&a, sizeof a) != 0) break;
    if (accept(lfd, 0, 0) < 0) break;
    fcntl(c, F_SETFL, O_NONBLOCK);
    for (;;) {
      ssize_t w = write(c, buf, sizeof buf);
      if (w <= 0) break;
      total += w;
    }
    made++;
  }
  printf("buffered %lld in %d connections\n", total, made);
  return 0;
}
