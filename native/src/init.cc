// sbx-init: pid 1 of every job (a small static binary, exec'd from a sealed memfd).
//
// It reads its configuration from the launcher over fd 3, drops every privilege (rlimits,
// capabilities, credentials, cwd, core scheduling, no_new_privs, seccomp — in that order), forks the command, tells
// the launcher whether execve worked, then reaps every process in the job, forwards signals to the
// command, and exits as soon as the command ends (the kernel then kills whatever is left in the
// pid namespace). Its argv is {"sbx-init", command argv...}; its environment is the job's.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

// sbx-init is linked with musl (no CPU-feature probing at start: tools/build-init.sh), whose
// <sys/prctl.h> predates core scheduling (Linux 5.14, <linux/prctl.h>).
#ifndef PR_SCHED_CORE
#define PR_SCHED_CORE 62
#define PR_SCHED_CORE_CREATE 1
#define PR_SCHED_CORE_SCOPE_THREAD_GROUP 1
#endif

#include "caps.h"
#include "init_config_read.h"
#include "input_files.h"
#include "jobmsg.h"
#include "mkdir_p.h"
#include "output_files.h"
#include "proto.h"
#include "recv_fds.h"
#include "rlimit.h"
#include "seccomp_install.h"
#include "tty.h"
#include "trace.h"
#include "user.h"

using namespace sbx;

namespace {

alignas(8) unsigned char gConfig[proto::kMaxConfigBytes];
uint64_t gTimes[8];  // trace.h kInitStart..kInitExecOk, kInitJobMounted, kInitCmdExec, sent with 'X'
alignas(8) char gJobBuf[jobmsg::kMaxBytes + 1];
jobmsg::Job gJob;

void send(char tag, int32_t value, const Error* e = nullptr) {
  proto::Msg m{};
  m.tag = tag;
  m.value = value;
  if (e) m.error = *e;
  if (tag == 'X') memcpy(m.t, gTimes, sizeof gTimes);
  if (tag == 'S') m.t[0] = trace::now();
  ::send(proto::kInitSyncFd, &m, sizeof m, MSG_NOSIGNAL);
}

using init_config::Config;

bool readConfig(Config& c, Error& err) {
  ssize_t n = recv(proto::kInitSyncFd, gConfig, sizeof gConfig, 0);
  if (n < 0) return fail(err, "init-config", "recv", "", errno);
  return init_config::parse(gConfig, (size_t)n, c, err);
}

bool oomScore(int adj, Error& err) {
  int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return fail(err, "oom-score", "open", "/proc/self/oom_score_adj", errno);
  char buf[16];
  int len = snprintf(buf, sizeof buf, "%d", adj);
  bool ok = write(fd, buf, len) == len;
  int e = errno;
  close(fd);
  return ok || fail(err, "oom-score", "write", "/proc/self/oom_score_adj", e);
}

// A pooled setup (zygote.h): the setup child made the job's namespaces, joined its cgroups, ran the
// mount program for the image of the slot's last job (up to and including pivot_root) and exec'd
// us as "sbx-zygote"; we have dropped every privilege with that job's config. Wait for the job
// message (jobmsg.h: argv, env; its stdin, stdout, stderr as SCM_RIGHTS; sent only if the job's
// image and config are the ones this setup was made with, its hostname already set by the
// launcher) and make it ours.
bool receiveJob(char**& argv, int& argc, int& filesFd, Error& err) {
  send('R', 0);
  int fds[4] = {-1, -1, -1, -1}, nfds = 0, msgFlags = 0;
  const auto keep = [&](int f) {
    if (nfds < 4) fds[nfds] = f;
    else close(f);
    nfds++;
  };
  ssize_t n;
  do n = recvWithFds(proto::kInitSyncFd, gJobBuf, sizeof gJobBuf, keep, 0, &msgFlags);  // blocking
  while (n < 0 && errno == EINTR);
  if (n == 0) _exit(0);  // the launcher let this setup go unused
  if (n < 0) return fail(err, "pool", "recvmsg", "", errno);
  gTimes[0] = trace::now();
  if ((msgFlags & (MSG_TRUNC | MSG_CTRUNC)) || !jobmsg::decode(gJobBuf, (size_t)n, gJob) ||
      nfds != ((gJob.flags & jobmsg::kHasFiles) ? 4 : 3))
    return fail(err, "pool", "recvmsg", "job message", EPROTO);
  filesFd = fds[3];
  for (int i = 0; i < 3; i++) {
    if (dup3(fds[i], i, 0) < 0) return fail(err, "stdio", "dup3", "", errno);
    close(fds[i]);
  }
  argv = gJob.argv;
  for (argc = 0; argv[argc]; argc++) {
  }
  environ = gJob.env;
  gTimes[6] = trace::now();
  return true;
}

// The launcher's "G" after the job message: the job's limits are written. Nothing of the job runs
// before it.
bool awaitGo(Error& err) {
  char go = 0;
  ssize_t n;
  do n = recv(proto::kInitSyncFd, &go, 1, 0);
  while (n < 0 && errno == EINTR);
  if (n == 0) _exit(0);
  if (n != 1 || go != 'G') return fail(err, "pool", "recv", "go", n < 0 ? errno : EPROTO);
  gTimes[1] = trace::now();
  return true;
}

// P4: chdir only after pivot_root, as the job's user, and verify the result is inside the root. A
// workdir the image lacks is made first, as `docker run -w` does (here as the job's user, 0755).
bool enterCwd(const char* cwd, Error& err) {
  if (chdir(cwd) != 0 && errno == ENOENT) {
    char path[4096];
    strncpy(path, cwd, sizeof path - 1);
    path[sizeof path - 1] = 0;
    if (int e = mkdirP(path, true)) return fail(err, "cwd", "mkdir", path, e, kInvalidSpec);
  }
  if (chdir(cwd) != 0) return fail(err, "cwd", "chdir", cwd, errno, kInvalidSpec);
  char buf[4096];
  if (!getcwd(buf, sizeof buf) || buf[0] != '/') return fail(err, "cwd", "getcwd", cwd, errno ? errno : ENOENT, kInvalidSpec);
  return true;
}

// The credential change clears PR_SET_PDEATHSIG: set it again, then make sure the launcher is
// still there (our parent is outside the pid namespace, so getppid() cannot tell: the socket can).
bool rearmDeathSignal(Error& err) {
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) return fail(err, "pdeathsig", "prctl", "", errno);
  struct pollfd p = {proto::kInitSyncFd, POLLRDHUP, 0};
  if (poll(&p, 1, 0) < 0 || (p.revents & (POLLHUP | POLLRDHUP | POLLERR))) _exit(1);
  return true;
}

// P30 core scheduling (nsjail --use_core_scheduling): a cookie of the job's own, inherited by every
// process it forks, so none of them shares an SMT core with another job's or the host's tasks.
// Without CONFIG_SCHED_CORE (EINVAL) or without SMT (ENODEV) there is nothing to share: run without.
bool coreSchedule(Error& err) {
  if (prctl(PR_SCHED_CORE, PR_SCHED_CORE_CREATE, 0, PR_SCHED_CORE_SCOPE_THREAD_GROUP, 0) == 0) return true;
  if (errno == EINVAL || errno == ENODEV) return true;
  return fail(err, "core-sched", "prctl(PR_SCHED_CORE_CREATE)", "", errno);
}

// P9: join the slot's user namespace. Our other namespaces stay owned by the host's user
// namespace, so the job's root has no privilege over its own mounts, network, hostname or IPC.
bool joinUserns(Error& err) {
  if (setns(proto::kInitUsernsFd, CLONE_NEWUSER) != 0) return fail(err, "userns", "setns", "", errno);
  close(proto::kInitUsernsFd);
  return true;
}

bool dropPrivileges(const Config& c, Error& err) {
  const proto::InitConfig& h = *c.h;
  RETURN_ON_FAILURE(oomScore(h.oomScoreAdj, err));
  RETURN_ON_FAILURE(rlimit::applyInInit(h, err));
  if (h.flags & proto::kUserns) RETURN_ON_FAILURE(joinUserns(err));
  RETURN_ON_FAILURE(caps::dropBoundingInInit(h.keepCaps, err));
  RETURN_ON_FAILURE(user::setCredsInInit(h.uid, h.gid, c.groups, h.ngroups, err));
  RETURN_ON_FAILURE(caps::setFinalInInit(h.keepCaps, err));
  RETURN_ON_FAILURE(rearmDeathSignal(err));
  RETURN_ON_FAILURE(enterCwd(c.cwd, err));
  if (h.flags & proto::kCoreSched) RETURN_ON_FAILURE(coreSchedule(err));
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return fail(err, "no-new-privs", "prctl", "", errno);
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return fail(err, "dumpable", "prctl", "", errno);
  gTimes[2] = trace::now();
  if (h.flags & proto::kSeccomp) RETURN_ON_FAILURE(seccomp::installInInit(c.filter, h.nfilter, err));
  gTimes[3] = trace::now();
  return true;
}

// execvpe() without its /bin/sh fallback: argv[0] is looked up in the job's PATH. A PATH entry
// whose candidate is too long for the kernel (ENAMETOOLONG) is passed over, as a shell passes it
// over; if every candidate was, that is the answer.
int execCommand(char** argv) {
  if (strchr(argv[0], '/')) {
    execve(argv[0], argv, environ);
    return errno;
  }
  const char* path = getenv("PATH");
  if (!path) path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  int result = ENOENT;
  char buf[4096];
  for (const char* p = path;; p++) {
    const char* end = strchrnul(p, ':');
    int len = snprintf(buf, sizeof buf, "%.*s/%s", (int)(end - p), end == p ? "." : p, argv[0]);
    if (end == p) len = snprintf(buf, sizeof buf, "./%s", argv[0]);
    if (len > 0 && (size_t)len < sizeof buf) {
      execve(buf, argv, environ);
      if (errno == EACCES) result = EACCES;
      else if (errno == ENAMETOOLONG) result = result == ENOENT ? ENAMETOOLONG : result;
      else if (errno != ENOENT && errno != ENOTDIR) return errno;
    } else if (len > 0 && result == ENOENT) {
      result = ENAMETOOLONG;  // longer than PATH_MAX: the kernel would say the same
    }
    if (!*end) break;
    p = end;
  }
  return result;
}

// The command is started with clone(CLONE_VM | CLONE_VFORK) on a stack of its own (posix_spawn's
// way): no copy of our page tables, no copy-on-write faults, no pipe; we resume once it has
// exec'd (or failed to: it leaves the errno in gExecErr, in our memory, and exits 127). The child
// only makes syscalls and touches its own stack, gExecErr and gTimes[7] (its start of the execve)
// until execve.
struct CommandArgs {
  char** argv;
  int ttySlave;
};
volatile int gExecErr;
alignas(16) char gCommandStack[64 * 1024];

int runCommand(void* p) {
  const CommandArgs& a = *static_cast<const CommandArgs*>(p);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  // P6: own session; no controlling terminal, or (tty jobs) the job's own pty as the only one
  int e = a.ttySlave >= 0 ? tty::becomeControllingInCommand(a.ttySlave) : (setsid(), 0);
  gTimes[7] = trace::now();
  if (e == 0) e = execCommand(a.argv);
  gExecErr = e ? e : EINVAL;
  _exit(127);
}

// The command has ended with `status`: our copies of the job's stdio go first, so its pipes end as
// soon as nothing else of the job holds them; then the output files (P56, read as the job's user
// under its filter); then the status, on which the launcher reports the outcome.
[[noreturn]] void finish(int status) {
  close(0);
  close(1);
  close(2);
  if (output_files::wanted()) output_files::collectAndSend(proto::kInitSyncFd);
  send('S', status);
  _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

// The launcher's 'K' (a timeout, jobs with output files): every other process of the job is killed
// (kill(-1) from a pid namespace's init reaches all of it but us, and no fork can slip past it), the
// command is reaped, and its files are collected as after any end. The launcher kills us if this
// takes longer than its grace.
[[noreturn]] void stopAndCollect(pid_t command) {
  kill(-1, SIGKILL);
  for (;;) {
    int status;
    pid_t p = waitpid(-1, &status, 0);
    if (p == command) finish(status);
    if (p < 0 && errno != EINTR) finish(SIGKILL);  // a wait status: killed by SIGKILL
  }
}

// What the reaper waits on: its signals, and (jobs with output files) the launcher's socket, on
// which a 'K' asks for the files despite the timeout. Returns the signal, or 0 for a 'K'.
// (Without the signalfd, a 'K' goes unread and the launcher's grace ends the job.)
int awaitSignalOrStop(const sigset_t& all, int sigFd, int& syncFd) {
  if (sigFd < 0) {
    siginfo_t si;
    return sigwaitinfo(&all, &si);
  }
  struct pollfd p[2] = {{sigFd, POLLIN, 0}, {syncFd, POLLIN, 0}};
  if (poll(p, 2, -1) < 0) return -1;
  if (p[1].revents) {
    char msg[8];
    ssize_t n = recv(syncFd, msg, sizeof msg, MSG_DONTWAIT);
    if (n == 1 && msg[0] == 'K') return 0;
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) syncFd = -1;  // the launcher is gone: poll() ignores -1
  }
  if (!(p[0].revents & POLLIN)) return -1;
  struct signalfd_siginfo ssi;
  if (read(sigFd, &ssi, sizeof ssi) != (ssize_t)sizeof ssi) return -1;
  return (int)ssi.ssi_signo;
}

[[noreturn]] void reapLoop(pid_t command) {
  sigset_t all;
  sigfillset(&all);
  int sigFd = output_files::wanted() ? signalfd(-1, &all, SFD_CLOEXEC) : -1;
  int syncFd = proto::kInitSyncFd;
  for (;;) {
    int sig = awaitSignalOrStop(all, sigFd, syncFd);
    if (sig == 0) stopAndCollect(command);
    if (sig < 0) continue;
    if (sig != SIGCHLD) {
      kill(command, sig);  // forward (SIGTERM, SIGINT, SIGHUP, SIGUSR1...)
      continue;
    }
    int status;
    pid_t p;
    while ((p = waitpid(-1, &status, WNOHANG)) > 0) {
      if (p == command && (WIFEXITED(status) || WIFSIGNALED(status))) finish(status);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  gTimes[0] = trace::now();
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  prctl(PR_SET_NAME, "sbx-init", 0, 0, 0);  // else "memfd:sbx-init"
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, nullptr);
  Error err;
  // A pooled setup drops its privileges before the job arrives (with the config of the job it was
  // made for, the same as this job's: zygote.h); its times up to seccomp are not the job's.
  bool zygote = argc == 1 && strcmp(argv[0], "sbx-zygote") == 0;
  Config c;
  bool ok = (zygote || argc >= 2) && readConfig(c, err);
  gTimes[1] = trace::now();
  ok = ok && dropPrivileges(c, err);
  if (ok) fcntl(proto::kInitSyncFd, F_SETFD, FD_CLOEXEC);
  int filesFd = ok && !zygote && (c.h->flags & proto::kFiles) ? proto::kInitFilesFd : -1;
  if (ok && zygote) {
    gTimes[1] = gTimes[2] = gTimes[3] = 0;
    ok = receiveJob(argv, argc, filesFd, err) && awaitGo(err);
  }
  // P55: the job's input files, as the job's user, under its seccomp filter, from its workdir
  if (ok && filesFd >= 0) ok = input_files::writeInInit(filesFd, err);
  if (!ok) {
    if (!err.err) fail(err, "init", "argv", "", EINVAL);
    send('F', 0, &err);
    return 1;
  }
  // tty jobs: allocated as the job's user under its seccomp filter, master handed to the launcher
  int ttyMaster = -1, ttySlave = -1;
  if (c.h->flags & proto::kTty) {
    if (!tty::openInInit(c.h->ttyRows, c.h->ttyCols, ttyMaster, ttySlave, err) ||
        !tty::sendMasterInInit(proto::kInitSyncFd, ttyMaster, err)) {
      send('F', 0, &err);
      return 1;
    }
    close(ttyMaster);
  }
  CommandArgs ca{argv + 1, ttySlave};
  gExecErr = 0;
  gTimes[4] = trace::now();
  pid_t pid = clone(runCommand, gCommandStack + sizeof gCommandStack, CLONE_VM | CLONE_VFORK | SIGCHLD, &ca);
  gTimes[5] = trace::now();  // the command has exec'd (or failed to)
  if (ttySlave >= 0) close(ttySlave);
  if (pid < 0) {
    fail(err, "exec", "clone", "", errno);
    send('F', 0, &err);
    return 1;
  }
  int execErr = gExecErr;
  if (execErr != 0) {
    // What the command's name or file causes is the job's to fix (command_not_found): among them
    // EIO, which the ELF loader returns for a program or interpreter too short for its headers.
    // The rest (ENOMEM, EFAULT, …) is the host's.
    int kind = (execErr == ENOENT || execErr == EACCES || execErr == ENOEXEC || execErr == ENOTDIR ||
                execErr == ELOOP || execErr == EISDIR || execErr == ENAMETOOLONG || execErr == ELIBBAD ||
                execErr == EINVAL || execErr == ETXTBSY || execErr == EIO)
                   ? kCommandNotFound
                   : kSystem;
    fail(err, "exec", "execve", argv[1], execErr, kind);
    send('E', execErr, &err);
    waitpid(pid, nullptr, 0);
    return 127;
  }
  send('X', pid);
  reapLoop(pid);
}
