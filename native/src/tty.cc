#include "tty.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include "proto.h"

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

namespace sbx::tty {

bool resize(int master, uint32_t rows, uint32_t cols, Error& err) {
  struct winsize ws;
  memset(&ws, 0, sizeof ws);
  ws.ws_row = (unsigned short)rows;
  ws.ws_col = (unsigned short)cols;
  if (ioctl(master, TIOCSWINSZ, &ws) != 0) return fail(err, "tty", "ioctl(TIOCSWINSZ)", "", errno);
  return true;
}

bool openInInit(uint32_t rows, uint32_t cols, int& master, int& slave, Error& err) {
  master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0) return fail(err, "tty", "open", "/dev/ptmx", errno);
  int unlock = 0;
  if (ioctl(master, TIOCSPTLCK, &unlock) != 0) return fail(err, "tty", "ioctl(TIOCSPTLCK)", "/dev/ptmx", errno);
  if (rows && cols) RETURN_ON_FAILURE(resize(master, rows, cols, err));
  slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0) return fail(err, "tty", "ioctl(TIOCGPTPEER)", "/dev/ptmx", errno);
  return true;
}

bool sendMasterInInit(int syncFd, int fd, Error& err) {
  proto::Msg m{};
  m.tag = 'T';
  proto::FdPacket packet;
  proto::packFd(packet, &m, sizeof m, fd);
  if (sendmsg(syncFd, &packet.mh, MSG_NOSIGNAL) != (ssize_t)sizeof m) return fail(err, "tty", "sendmsg", "master", errno);
  return true;
}

int becomeControllingInCommand(int slave) {
  if (setsid() < 0) return errno;
  if (ioctl(slave, TIOCSCTTY, 0) != 0) return errno;
  for (int to = 0; to < 3; to++)
    if (dup2(slave, to) < 0) return errno;  // dup2 clears FD_CLOEXEC on 0-2
  if (slave > 2) close(slave);
  return 0;
}

}  // namespace sbx::tty
