// Attack/posture probe run inside (and, for controls, outside) the sandbox. Raw syscalls with
// harmless arguments; prints one "name=result" line per check, where result is "ok" or an errno
// name, so a test can tell "refused by the filter" (EPERM / ENOSYS) from "reached the kernel".
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static void report(const char* name, long r) {
  if (r >= 0) printf("%s=ok\n", name);
  else printf("%s=%s\n", name, strerrorname_np(errno) ? strerrorname_np(errno) : "E?");
}
#define TRY(name, expr) do { errno = 0; long _r = (long)(expr); report(name, _r); } while (0)

static long clone_flags(unsigned long flags) {
  long pid = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
  if (pid == 0) _exit(0);
  if (pid > 0) waitpid((pid_t)pid, NULL, 0);
  return pid;
}

static int int80_getpid(void) {
#if defined(__x86_64__)
  pid_t c = fork();
  if (c == 0) {
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(20) : "memory");  // i386 getpid
    _exit(r > 0 ? 0 : 1);
  }
  int st = 0;
  waitpid(c, &st, 0);
  if (WIFSIGNALED(st)) { printf("int80=signal:%s\n", sigabbrev_np(WTERMSIG(st))); return 0; }
  printf("int80=exit:%d\n", WEXITSTATUS(st));
#endif
  return 0;
}

static void syscalls(void) {
  char buf[64] = {0};
  int80_getpid();
  TRY("keyctl", syscall(SYS_keyctl, 0 /*KEYCTL_GET_KEYRING_ID*/, -3 /*session*/, 0));
  TRY("add_key", syscall(SYS_add_key, "user", "sbx", "x", 1, -3));
  TRY("request_key", syscall(SYS_request_key, "user", "sbx-none", NULL, 0));
  TRY("bpf", syscall(SYS_bpf, 0, NULL, 0));
  TRY("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
  TRY("userfaultfd", syscall(SYS_userfaultfd, 1 /*UFFD_USER_MODE_ONLY*/));
  TRY("io_uring_setup", syscall(SYS_io_uring_setup, 1, NULL));
  TRY("mount", syscall(SYS_mount, NULL, NULL, NULL, 0, NULL));
  // A path no kernel has: unfiltered, the lookup fails first (ENOENT, on every kernel and before
  // any permission check); the filter answers EPERM without looking.
  TRY("umount2", syscall(SYS_umount2, "/sbx-no-such-mount-point", MNT_DETACH));
  TRY("pivot_root", syscall(SYS_pivot_root, NULL, NULL));
  TRY("fsopen", syscall(430 /*fsopen*/, "tmpfs", 0));
  TRY("open_tree", syscall(428 /*open_tree*/, -1, "/", 0));
  TRY("unshare_user", syscall(SYS_unshare, CLONE_NEWUSER));
  TRY("unshare_net", syscall(SYS_unshare, CLONE_NEWNET));
  TRY("setns", syscall(SYS_setns, -1, 0));
  TRY("clone_newuser", clone_flags(CLONE_NEWUSER));
  TRY("clone_plain", clone_flags(0));
  TRY("clone3", syscall(435 /*clone3*/, NULL, 0));
  // A bad mount fd and no handle: unfiltered, Linux >= 6.10 fails on one of them (6.10-6.1x look up
  // the mount fd first: EBADF; newer ones copy the handle first: EFAULT) before the permission
  // check that answers EPERM to callers without CAP_DAC_READ_SEARCH (which older kernels do first).
  TRY("open_by_handle_at", syscall(SYS_open_by_handle_at, -1, NULL, 0));
  TRY("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0));
  TRY("init_module", syscall(SYS_init_module, NULL, 0, ""));
  TRY("finit_module", syscall(SYS_finit_module, -1, "", 0));
  TRY("delete_module", syscall(SYS_delete_module, "sbx_none", 0));
  TRY("reboot", syscall(SYS_reboot, 0, 0, 0, NULL));
  TRY("swapon", syscall(SYS_swapon, "/nonexistent", 0));
  TRY("acct", syscall(SYS_acct, NULL));
  TRY("syslog", syscall(SYS_syslog, 10 /*SYSLOG_ACTION_SIZE_BUFFER*/, NULL, 0));
  struct iovec iov = {buf, 1};
  TRY("process_vm_readv", syscall(SYS_process_vm_readv, getpid(), &iov, 1, &iov, 1, 0));
  TRY("kcmp", syscall(SYS_kcmp, getpid(), getpid(), 0 /*KCMP_FILE*/, 0, 0));
  TRY("pidfd_getfd", syscall(438 /*pidfd_getfd*/, -1, 0, 0));
  TRY("settimeofday", syscall(SYS_settimeofday, NULL, NULL));
  TRY("clock_settime", syscall(SYS_clock_settime, 99, NULL));
  TRY("iopl", syscall(SYS_iopl, 0));
  TRY("ioperm", syscall(SYS_ioperm, 0, 0, 0));
  TRY("personality_bad", syscall(SYS_personality, 0x0040000 /*ADDR_NO_RANDOMIZE*/));
  TRY("personality_query", syscall(SYS_personality, 0xffffffff));
  TRY("socket_alg", syscall(SYS_socket, 38 /*AF_ALG*/, SOCK_SEQPACKET, 0));
  TRY("socket_vsock", syscall(SYS_socket, 40 /*AF_VSOCK*/, SOCK_STREAM, 0));
  TRY("socket_inet", syscall(SYS_socket, AF_INET, SOCK_STREAM, 0));
  TRY("tiocsti_high", syscall(SYS_ioctl, 0, 0x100000000UL | TIOCSTI, buf));
  TRY("sethostname", syscall(SYS_sethostname, "x", 1));
  TRY("unknown_1000", syscall(1000));
  TRY("newer_467", syscall(467, -1, "", 0, NULL, 0));
  TRY("x32_getpid", syscall(0x40000000 | 39));
  TRY("getpid", syscall(SYS_getpid));
  TRY("ptrace", syscall(SYS_ptrace, PTRACE_TRACEME, 0, NULL, NULL));  // last: it makes us a tracee
}

static void status(void) {
  FILE* f = fopen("/proc/self/status", "r");
  char line[256];
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, "Cap", 3) || !strncmp(line, "NoNewPrivs", 10) || !strncmp(line, "Seccomp:", 8) ||
        !strncmp(line, "SigIgn", 6) || !strncmp(line, "SigBlk", 6))
      fputs(line, stdout);
  if (f) fclose(f);
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  printf("NOFILE:\t%llu %llu\n", (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);
  getrlimit(RLIMIT_CORE, &rl);
  printf("CORE:\t%llu\n", (unsigned long long)rl.rlim_cur);
  getrlimit(RLIMIT_MEMLOCK, &rl);
  printf("MEMLOCK:\t%llu\n", (unsigned long long)rl.rlim_cur);
  printf("Dumpable:\t%d\n", prctl(PR_GET_DUMPABLE));
  printf("SessionLeader:\t%d\n", getsid(0) == getpid());
  int tty = open("/dev/tty", O_RDONLY);
  printf("Tty:\t%s\n", tty >= 0 ? "yes" : strerrorname_np(errno));
  DIR* d = opendir("/proc/self/fd");
  printf("Fds:\t");
  struct dirent* e;
  while (d && (e = readdir(d)))
    if (e->d_name[0] != '.' && atoi(e->d_name) != dirfd(d)) printf("%s ", e->d_name);
  printf("\n");
  if (d) closedir(d);
}

static void openmax(void) {
  int n = 0;
  while (open("/dev/null", O_RDONLY) >= 0) n++;
  printf("opened=%d errno=%s\n", n, strerrorname_np(errno));
}

static void writefile(const char* path) {
  int fd = open(path, O_WRONLY);
  if (fd < 0) { printf("%s=%s\n", path, strerrorname_np(errno)); return; }
  ssize_t w = write(fd, "sbx\n", 4);
  printf("%s=%s\n", path, w == 4 ? "written" : strerrorname_np(errno));
  close(fd);
}

static void readfile(const char* path) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) { printf("%s=%s\n", path, strerrorname_np(errno)); return; }
  char buf[4096];
  ssize_t n = read(fd, buf, sizeof buf);
  printf("%s=%s:%zd\n", path, n >= 0 ? "read" : strerrorname_np(errno), n);
  close(fd);
}

// P17: open each path write-only (kmsg accepts that without further checks), never write.
static void opendev(const char* path) {
  int fd = open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
  printf("%s=%s\n", path, fd >= 0 ? "ok" : strerrorname_np(errno));
  if (fd >= 0) close(fd);
}

// P29: fork up to n children that wait forever; report how many forks succeeded, then wait.
static void forks(long n) {
  long k = 0;
  int e = 0;
  for (; k < n; k++) {
    pid_t p = fork();
    if (p == 0) for (;;) pause();
    if (p < 0) { e = errno; break; }
  }
  printf("forked=%ld errno=%s\n", k, e ? strerrorname_np(e) : "none");
  for (;;) pause();
}

// P30: "hold": take flock(LOCK_EX) and keep it until killed; "try": report every lock call.
static void lock(const char* mode, const char* path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) { printf("open=%s\n", strerrorname_np(errno)); return; }
  if (!strcmp(mode, "hold")) {
    TRY("flock_hold", flock(fd, LOCK_EX));
    for (;;) pause();
  }
  TRY("flock", flock(fd, LOCK_EX | LOCK_NB));
  struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET};
  TRY("fcntl_setlk", fcntl(fd, F_SETLK, &fl));
  TRY("fcntl_setlkw", fcntl(fd, F_SETLKW, &fl));
  struct flock ofd = {.l_type = F_RDLCK, .l_whence = SEEK_SET};
  TRY("fcntl_ofd_setlk", fcntl(fd, F_OFD_SETLK, &ofd));
  struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
  TRY("fcntl_getlk", fcntl(fd, F_GETLK, &q));
  TRY("fcntl_getfd", fcntl(fd, F_GETFD));
}

// P30 core scheduling: print the cookie (PR_SCHED_CORE_GET; 0x0 = none, else an errno name) of
// ourselves ("self"), of pid 1 ("pid1"), of each numeric argument ("pid<N>"), and of a forked child
// as the child sees it ("child") and as we see it ("child_seen"). "from <pid>" first tries to pull
// that process's cookie (PR_SCHED_CORE_SHARE_FROM: "share_from<pid>=..."); "hold" then waits forever.
static void cookie(const char* name, long pid) {
  unsigned long long c = 0;
  errno = 0;
  if (prctl(PR_SCHED_CORE, PR_SCHED_CORE_GET, pid, PR_SCHED_CORE_SCOPE_THREAD, (unsigned long)&c) == 0)
    printf("%s=0x%llx\n", name, c);
  else
    printf("%s=%s\n", name, strerrorname_np(errno) ? strerrorname_np(errno) : "E?");
}

static void corecookie(int argc, char** argv) {
  int hold = 0;
  for (int i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "from") && i + 1 < argc) {
      char name[40];
      snprintf(name, sizeof name, "share_from%s", argv[++i]);
      TRY(name, prctl(PR_SCHED_CORE, PR_SCHED_CORE_SHARE_FROM, atol(argv[i]), PR_SCHED_CORE_SCOPE_THREAD, 0));
    }
  }
  cookie("self", 0);
  cookie("pid1", 1);
  for (int i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "hold")) hold = 1;
    else if (!strcmp(argv[i], "from")) i++;
    else {
      char name[32];
      snprintf(name, sizeof name, "pid%s", argv[i]);
      cookie(name, atol(argv[i]));
    }
  }
  int p[2];
  if (pipe(p) != 0) return;
  pid_t c = fork();
  if (c == 0) {
    char b;
    cookie("child", 0);
    close(p[1]);
    (void)!read(p[0], &b, 1);  // stay alive until the parent has looked at us
    _exit(0);
  }
  close(p[0]);
  if (c > 0) {
    cookie("child_seen", c);
    close(p[1]);
    waitpid(c, NULL, 0);
  }
  printf("done=1\n");
  if (hold) for (;;) pause();
}

// P17 on cgroup v2 (run on the host, as root): how many BPF_CGROUP_DEVICE programs are attached
// to each cgroup directory ("<dir>=<n>", or an errno name).
static void devprogs(const char* dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) { printf("%s=%s\n", dir, strerrorname_np(errno)); return; }
  union bpf_attr a;
  memset(&a, 0, sizeof a);
  a.query.target_fd = (uint32_t)fd;
  a.query.attach_type = BPF_CGROUP_DEVICE;
  if (syscall(SYS_bpf, BPF_PROG_QUERY, &a, sizeof a) == 0) printf("%s=%u\n", dir, a.query.prog_cnt);
  else printf("%s=%s\n", dir, strerrorname_np(errno));
  close(fd);
}

static void memhog(long mb) {
  for (long i = 0; i < mb; i++) {
    char* p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { printf("mmap failed at %ld MiB\n", i); return; }
    memset(p, 1, 1 << 20);
  }
  printf("allocated %ld MiB\n", mb);
}

// Scheduling posture of this process and of the job's pid 1: policy (with the SCHED_RESET_ON_FORK
// bit), nice, I/O priority (raw ioprio_get value: 0 = none, i.e. derived from nice).
static void sched(void) {
  for (int pid = 0; pid <= 1; pid++) {
    const char* who = pid ? "init" : "self";
    int pol = sched_getscheduler(pid);
    errno = 0;
    int nice = getpriority(PRIO_PROCESS, pid);
    int nerr = errno;
    long io = syscall(SYS_ioprio_get, 1 /* IOPRIO_WHO_PROCESS */, pid);
    if (pol < 0) printf("%s_policy=%s\n", who, strerrorname_np(errno)); else printf("%s_policy=%d\n", who, pol);
    if (nerr) printf("%s_nice=%s\n", who, strerrorname_np(nerr)); else printf("%s_nice=%d\n", who, nice);
    printf("%s_ioprio=%ld\n", who, io);
  }
  // What the job may change of its own: real time (needs RLIMIT_RTPRIO or CAP_SYS_NICE), a lower
  // nice (the same), SCHED_OTHER (any process may leave SCHED_BATCH).
  struct sched_param rt = {.sched_priority = 1}, none = {.sched_priority = 0};
  printf("set_fifo=%s\n", sched_setscheduler(0, SCHED_FIFO, &rt) == 0 ? "ok" : strerrorname_np(errno));
  printf("set_nice_-1=%s\n", setpriority(PRIO_PROCESS, 0, -1) == 0 ? "ok" : strerrorname_np(errno));
  printf("set_other=%s\n", sched_setscheduler(0, SCHED_OTHER, &none) == 0 ? "ok" : strerrorname_np(errno));
}

int main(int argc, char** argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc < 2) return 2;
  if (!strcmp(argv[1], "syscalls")) syscalls();
  else if (!strcmp(argv[1], "status")) status();
  else if (!strcmp(argv[1], "openmax")) openmax();
  else if (!strcmp(argv[1], "memhog") && argc > 2) memhog(atol(argv[2]));
  else if (!strcmp(argv[1], "write")) for (int i = 2; i < argc; i++) writefile(argv[i]);
  else if (!strcmp(argv[1], "read")) for (int i = 2; i < argc; i++) readfile(argv[i]);
  else if (!strcmp(argv[1], "spin")) for (;;) {}
  else if (!strcmp(argv[1], "opendev")) for (int i = 2; i < argc; i++) opendev(argv[i]);
  else if (!strcmp(argv[1], "forks") && argc > 2) forks(atol(argv[2]));
  else if (!strcmp(argv[1], "lock") && argc > 3) lock(argv[2], argv[3]);
  else if (!strcmp(argv[1], "corecookie")) corecookie(argc, argv);
  else if (!strcmp(argv[1], "sched")) sched();
  else if (!strcmp(argv[1], "devprogs")) for (int i = 2; i < argc; i++) devprogs(argv[i]);
  else return 2;
  return 0;
}
