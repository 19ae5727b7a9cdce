// An owned file descriptor: closed when it goes out of scope, so every undo step is bound to the
// creation (a failed launch leaks nothing). Move-only.
//
// For the launcher's Node-side code only. The setup child (child.cc and the *InChild functions,
// which share Node's memory after clone and may run no destructor and no libc) and sbx-init (its
// own fd numbers 0-4 are a protocol, closed or kept explicitly) use plain ints.
#pragma once
#include <errno.h>
#include <unistd.h>

namespace sbx {

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  ~Fd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Close the one held (keeping errno: a failure being reported is not overwritten) and take `fd`.
  void reset(int fd = -1) {
    if (fd_ >= 0) {
      int saved = errno;
      ::close(fd_);
      errno = saved;
    }
    fd_ = fd;
  }
  // Give up ownership (to a JS stream, a cache that lives as long as the process, ...).
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }

 private:
  int fd_ = -1;
};

}  // namespace sbx
