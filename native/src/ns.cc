#include "ns.h"

#include <errno.h>
#include <linux/sched.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/asan_interface.h>
#endif

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "background.h"
#include "threads.h"
#include "proto.h"
#include "sys.h"

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

// long sbx_clone3(struct clone_args*, size_t, int (*fn)(void*), void* arg)
// The child starts on the stack given in clone_args, calls fn(arg) and exits with its result.
#if defined(__x86_64__)
__asm__(
    ".text\n"
    ".globl sbx_clone3\n"
    ".hidden sbx_clone3\n"
    ".type sbx_clone3,@function\n"
    "sbx_clone3:\n"
    "  mov %rdx, %r8\n"       // fn   (r8/r9 survive the syscall and are copied to the child)
    "  mov %rcx, %r9\n"       // arg
    "  mov $435, %eax\n"      // __NR_clone3
    "  syscall\n"
    "  test %rax, %rax\n"
    "  jnz 1f\n"
    "  xor %ebp, %ebp\n"      // child: fresh frame on the new stack
    "  mov %r9, %rdi\n"
    "  call *%r8\n"
    "  mov %eax, %edi\n"
    "  mov $60, %eax\n"       // __NR_exit
    "  syscall\n"
    "  hlt\n"
    "1: ret\n"
    ".size sbx_clone3, .-sbx_clone3\n");
#elif defined(__aarch64__)
__asm__(
    ".text\n"
    ".globl sbx_clone3\n"
    ".hidden sbx_clone3\n"
    ".type sbx_clone3,%function\n"
    "sbx_clone3:\n"
    "  mov x9, x2\n"
    "  mov x10, x3\n"
    "  mov x8, #435\n"
    "  svc #0\n"
    "  cbnz x0, 1f\n"
    "  mov x29, #0\n"
    "  mov x0, x10\n"
    "  blr x9\n"
    "  mov x8, #93\n"         // __NR_exit
    "  svc #0\n"
    "1: ret\n"
    ".size sbx_clone3, .-sbx_clone3\n");
#endif
extern "C" long sbx_clone3(struct clone_args* args, size_t size, int (*fn)(void*), void* arg);

namespace sbx::ns {

namespace {

void forgetFrames(void* stack, size_t size) {
#ifdef __SANITIZE_ADDRESS__
  __asan_unpoison_memory_region(stack, size);
#else
  (void)stack, (void)size;
#endif
}

}  // namespace

void* mapStack(size_t size) {
  void* stack = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) return nullptr;
  forgetFrames(stack, size);
  return stack;
}

void unmapStack(void* stack, size_t size) {
  forgetFrames(stack, size);
  munmap(stack, size);
}

bool cloneChild(uint64_t nsFlags, int cgroupFd, void* stack, size_t stackSize, int (*fn)(void*), void* arg,
                Clone& out, Error& err) {
  struct clone_args ca;
  sys::bzero(&ca, sizeof ca);
  int pidfd = -1;
  ca.flags = CLONE_VM | CLONE_PIDFD | nsFlags | (cgroupFd >= 0 ? CLONE_INTO_CGROUP : 0);
  ca.pidfd = (uint64_t)(uintptr_t)&pidfd;
  ca.exit_signal = SIGCHLD;
  ca.stack = (uint64_t)(uintptr_t)stack;
  ca.stack_size = stackSize;
  if (cgroupFd >= 0) ca.cgroup = (uint64_t)cgroupFd;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  long pid = sbx_clone3(&ca, sizeof ca, fn, arg);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) return fail(err, "clone", "clone3", "", pid);
  out.pid = (int)pid;
  out.pidfd.reset(pidfd);
  return true;
}

bool unshareInChild(int netFd, Error& err) {
  long r = sys::sc(__NR_unshare, kUnshareFlags | (netFd < 0 ? kCloneNewNet : 0));
  if (r != 0) return fail(err, "namespaces", "unshare", "", r);
  if (netFd < 0) return loopbackUpInChild(err);
  r = sys::sc(__NR_setns, netFd, kCloneNewNet);
  return r == 0 || fail(err, "namespaces", "setns", "net", r);
}

namespace {

constexpr size_t kNetPoolSize = 4;

struct NetPool {
  std::mutex mu;
  std::condition_variable wake;
  std::deque<Fd> fds;
  bool started = false;
  bool broken = false;  // creation failed once: stop trying, callers fall back
};
NetPool& pool() {
  static NetPool* p = new NetPool();  // never destroyed: the filler thread outlives static teardown
  return *p;
}

// Make a namespace in this thread (nsproxy is per thread), keep an fd, and go back home, so the
// filler thread never stays in a namespace a job will use.
Fd makeNetns(int homeFd) {
  if (unshare(CLONE_NEWNET) != 0) return Fd();
  Error ignored;
  Fd fd;
  if (loopbackUpInChild(ignored)) {
    Fd raw(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
    if (raw.valid()) fd.reset(fcntl(raw.get(), F_DUPFD_CLOEXEC, 10 /* child::kMinFd */));
  }
  if (setns(homeFd, CLONE_NEWNET) != 0) return Fd();  // cannot go home: stop making namespaces
  return fd;
}

void fill() {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, nullptr);
  background::lowerThisThread();
  NetPool& p = pool();
  Fd home(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  for (;;) {
    {
      std::unique_lock<std::mutex> lk(p.mu);
      p.wake.wait(lk, [&] { return p.fds.size() < kNetPoolSize; });
    }
    Fd fd = home.valid() ? makeNetns(home.get()) : Fd();
    std::lock_guard<std::mutex> lk(p.mu);
    if (!fd.valid()) {
      p.broken = true;
      return;
    }
    p.fds.push_back(std::move(fd));
  }
}

}  // namespace

bool unshareCgroupInChild(Error& err) {
  long r = sys::sc(__NR_unshare, 0x02000000 /*CLONE_NEWCGROUP*/);
  return r == 0 || fail(err, "namespaces", "unshare", "cgroup", r);
}

bool joinBaseMountNsInChild(int baseFd, int& nsDirFd, Error& err) {
  long dir = sys::sc(__NR_openat, AT_FDCWD, "/proc/self/ns", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return fail(err, "namespaces", "open", "/proc/self/ns", dir);
  nsDirFd = (int)dir;
  long r = sys::sc(__NR_setns, baseFd, 0x00020000 /*CLONE_NEWNS*/);
  return r == 0 || fail(err, "namespaces", "setns", "mount base", r);
}

void shareMountNsInChild(int syncFd, int nsDirFd) {
  long fd = nsDirFd >= 0 ? sys::sc(__NR_openat, nsDirFd, "mnt", O_RDONLY | O_CLOEXEC)
                         : sys::sc(__NR_openat, AT_FDCWD, "/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  char tag[sizeof(proto::Msg)];
  sys::bzero(tag, sizeof tag);
  tag[0] = 'N';
  proto::FdPacket packet;
  proto::packFd(packet, tag, sizeof tag, (int)fd);
  sys::sc(__NR_sendmsg, syncFd, &packet.mh, MSG_NOSIGNAL);
  sys::sc(__NR_close, fd);
}

namespace {

struct Janitor {
  std::mutex mu;
  std::condition_variable wake;
  std::deque<Fd> fds;
  bool started = false;
};
Janitor& janitor() {
  static Janitor* j = new Janitor();
  return *j;
}

void janitorLoop() {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, nullptr);
  background::lowerThisThread();
  Janitor& j = janitor();
  for (;;) {
    Fd fd;
    {
      std::unique_lock<std::mutex> lk(j.mu);
      j.wake.wait(lk, [&] { return !j.fds.empty(); });
      fd = std::move(j.fds.front());
      j.fds.pop_front();
    }
    fd.reset();  // outside the lock: this is the slow part
  }
}

}  // namespace

void releaseLater(Fd fd) {
  if (!fd.valid()) return;
  Janitor& j = janitor();
  std::unique_lock<std::mutex> lk(j.mu);
  if (!j.started && !(j.started = threads::startDetached(janitorLoop))) {
    lk.unlock();
    fd.reset();  // no thread to hand it to (the host's pids limit): released here, however slowly
    return;
  }
  j.fds.push_back(std::move(fd));
  j.wake.notify_one();
}

Fd takeNetns() {
  NetPool& p = pool();
  std::lock_guard<std::mutex> lk(p.mu);
  if (!p.started) p.started = threads::startDetached(fill);  // none: each job makes its own
  if (p.fds.empty() || p.broken) return Fd();
  Fd fd = std::move(p.fds.front());
  p.fds.pop_front();
  p.wake.notify_one();
  return fd;
}

bool takeOrMakeNetns(Fd& out, Error& err) {
  out = takeNetns();
  if (out.valid()) return true;
  // On a thread of its own: one that could not go home would end there, not stay in a job's namespace.
  int e = 0;
  const bool ran = threads::runOnOwnThread([&out, &e] {
    Fd home(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
    if (home.valid()) out = makeNetns(home.get());
    if (!out.valid()) e = errno ? errno : EAGAIN;
  }, e);
  if (!ran) return fail(err, "namespaces", "clone", "thread", e);
  return out.valid() || fail(err, "namespaces", "unshare", "net", e);
}

bool listenIn(int nsFd, uint16_t port, Fd& out, Error& err) {
  thread_local int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) return fail(err, "listen", "open", "/proc/thread-self/ns/net", errno);
  if (setns(nsFd, CLONE_NEWNET) != 0) return fail(err, "listen", "setns", "net", errno);
  Fd sock(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  int e = sock.valid() ? 0 : errno;
  const char* call = "socket";
  if (e == 0) {
    struct sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(sock.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) != 0) e = errno, call = "bind";
    else if (listen(sock.get(), 128) != 0) e = errno, call = "listen";
  }
  if (setns(self, CLONE_NEWNET) != 0) {
    fprintf(stderr, "sbx-native: cannot return to the launcher's network namespace: %s\n", strerror(errno));
    abort();
  }
  if (e != 0) return fail(err, "listen", call, "127.0.0.1", e);
  out = std::move(sock);
  return true;
}

bool setHostnameInChild(const char* name, size_t len, Error& err) {
  long r = sys::sc(__NR_sethostname, name, len);
  return r == 0 || fail(err, "hostname", "sethostname", name, r);
}

bool setHostnameOf(int pidfd, const char* name, size_t len, Error& err) {
  thread_local int self = open("/proc/thread-self/ns/uts", O_RDONLY | O_CLOEXEC);
  if (self < 0) return fail(err, "hostname", "open", "/proc/thread-self/ns/uts", errno);
  if (setns(pidfd, CLONE_NEWUTS) != 0) return fail(err, "hostname", "setns", "", errno);
  int e = sethostname(name, len) == 0 ? 0 : errno;
  if (setns(self, CLONE_NEWUTS) != 0) {
    fprintf(stderr, "sbx-native: cannot return to the launcher's uts namespace: %s\n", strerror(errno));
    abort();
  }
  return e == 0 || fail(err, "hostname", "sethostname", name, e);
}

bool loopbackUpInChild(Error& err) {
  long fd = sys::sc(__NR_socket, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(err, "loopback", "socket", "lo", fd);
  struct ifreq ifr;
  sys::bzero(&ifr, sizeof ifr);
  ifr.ifr_name[0] = 'l';
  ifr.ifr_name[1] = 'o';
  long r = sys::sc(__NR_ioctl, fd, SIOCGIFFLAGS, &ifr);
  if (r == 0) {
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    r = sys::sc(__NR_ioctl, fd, SIOCSIFFLAGS, &ifr);
  }
  sys::sc(__NR_close, fd);
  return r == 0 || fail(err, "loopback", "ioctl(SIOCSIFFLAGS)", "lo", r);
}

}  // namespace sbx::ns
