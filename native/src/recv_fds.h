// One datagram from a local socket (by default without waiting: `flags`), with the fds passed along
// it (SCM_RIGHTS, up to 4) handed to `onFd` one by one after the payload is in `buf`: the caller
// decides which to keep and how the others are closed (at once, or off the JS thread). `msgFlags`,
// if given, receives the message's flags (MSG_TRUNC, MSG_CTRUNC). Used by the addon and sbx-init.
#pragma once

#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

namespace sbx {

template <class OnFd>
ssize_t recvWithFds(int sock, void* buf, size_t len, OnFd&& onFd, int flags = MSG_DONTWAIT, int* msgFlags = nullptr) {
  struct iovec iov = {buf, len};
  alignas(struct cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * 4)];
  struct msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = cbuf;
  mh.msg_controllen = sizeof cbuf;
  ssize_t n = recvmsg(sock, &mh, flags | MSG_CMSG_CLOEXEC);
  if (msgFlags) *msgFlags = mh.msg_flags;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&mh); n >= 0 && c; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
      int f;
      memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof f);
      onFd(f);
    }
  }
  return n;
}

}  // namespace sbx
