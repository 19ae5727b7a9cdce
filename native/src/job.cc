#include "job.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <string.h>
#include <map>
#include <set>

#include "fd.h"
#include "full_io.h"
#include "init_config.h"
#include "input_files.h"
#include "input_files_pack.h"
#include "output_files.h"
#include "ns.h"
#include "proto.h"
#include "recv_fds.h"
#include "sys.h"
#include "trace.h"
#include "userns.h"
#include "zygote.h"

namespace sbx::job {
namespace {

constexpr size_t kStackSize = 256 * 1024;
Fd gInit;  // sbx-init in a sealed memfd, loaded once
int gNextHandle = 1;
std::map<int, Job*> gJobs;
std::set<std::string> gPreparedStateDirs;

uint64_t nowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

// Move fd to a number >= kMinFd (so the child's dup3 onto 0..3 cannot clobber a source).
bool raiseFd(Fd& f, Error& err) {
  if (f.get() >= child::kMinFd) return true;
  int n = fcntl(f.get(), F_DUPFD_CLOEXEC, child::kMinFd);
  if (n < 0) return fail(err, "fds", "fcntl(F_DUPFD_CLOEXEC)", "", errno);
  f.reset(n);
  return true;
}

bool makePipe(Fd& r, Fd& w, Error& err) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return fail(err, "fds", "pipe2", "", errno);
  r.reset(p[0]);
  w.reset(p[1]);
  return true;
}

}  // namespace

struct Job {
  int handle = 0;
  napi_env env = nullptr;
  Napi::FunctionReference onEvent;
  std::unique_ptr<Napi::AsyncContext> asyncContext;
  spec::Spec spec;
  // Everything the setup child reads: must stay alive and unchanged until it has exec'd (we keep
  // it until the job ends).
  mnt::Arena arena;
  std::vector<mnt::Op> ops;
  std::vector<char*> initArgv, initEnvp;
  std::vector<std::string> joinFiles;
  std::vector<const char*> joinPtrs;
  child::Args args{};
  std::vector<int> keptFds;  // args.keptFds
  void* stack = nullptr;
  cgroup::Group group;
  int pid = -1;
  Fd pidfd, syncFd;
  Fd mntns;  // the job's mount namespace, released after the exit is reported
  Fd tty;    // tty jobs: the pty master from sbx-init ('T'), handed to JS with "exec"
  Fd outputs;  // jobs with outputFiles: the collected files from sbx-init ('O'), read into "ended"
  uv_poll_t exitPoll{}, syncPoll{};
  int openPolls = 0;
  bool syncPolling = false;
  uint64_t startNs = 0;
  bool haveStatus = false;
  int commandStatus = 0;
  bool execReported = false;
  // The outcome as reported with "ended" (from sbx-init's 'S', or at pid 1's exit), kept for "exit".
  bool endedEmitted = false;
  uint64_t endWallNs = 0;
  cgroup::Usage endUsage;
  bool tracing = false;  // Options.trace: times[] goes into the exit payload
  uint64_t times[trace::kCount] = {};
  std::unique_ptr<zygote::Zygote> zygote;  // pooled launches: its stack and setup program, kept to the end
  // Pooling: the slot's next setups are requested with these once the job has ended.
  struct Refill {
    const cgroup::Host* host;
    spec::Options options;
    std::string config;
  };
  std::unique_ptr<Refill> refill;

  ~Job() {
    ns::releaseLater(std::move(mntns));
    if (stack) ns::unmapStack(stack, kStackSize);
  }
};

namespace {

void emit(Job* j, const char* kind, Napi::Object payload) {
  Napi::Env env(j->env);
  j->onEvent.MakeCallback(env.Global(), {Napi::String::New(env, kind), payload}, *j->asyncContext);
}

Napi::Object errorPayload(Napi::Env env, const Error& e) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("errno", Napi::Number::New(env, e.err));
  o.Set("kind", Napi::Number::New(env, e.kind));
  o.Set("stage", e.stage);
  o.Set("syscall", e.syscall);
  o.Set("path", e.path);
  return o;
}

void handleMsg(Job* j, const proto::Msg& m) {
  Napi::Env env(j->env);
  Napi::HandleScope scope(env);
  switch (m.tag) {
    case 'X': {
      j->execReported = true;
      for (int i = 0; i < 6; i++) j->times[trace::kInitStart + i] = m.t[i];
      j->times[trace::kInitJobMounted] = m.t[6];
      j->times[trace::kInitCmdExec] = m.t[7];
      trace::mark(j->times, trace::kExecSeen);
      Napi::Object o = Napi::Object::New(env);
      o.Set("pid", Napi::Number::New(env, j->pid));
      if (j->tty.valid()) {
        // Two descriptions' worth of fds on one master: JS reads one (a libuv stream) and writes and
        // resizes through the other, each closed by its owner; both non-blocking.
        int fl = fcntl(j->tty.get(), F_GETFL);
        fcntl(j->tty.get(), F_SETFL, fl | O_NONBLOCK);
        int w = fcntl(j->tty.get(), F_DUPFD_CLOEXEC, 3);
        o.Set("ttyWriteFd", Napi::Number::New(env, w));
        o.Set("ttyFd", Napi::Number::New(env, j->tty.release()));
      }
      emit(j, "exec", o);
      break;
    }
    case 'E':
    case 'F':
      j->execReported = true;
      emit(j, "error", errorPayload(env, m.error));
      break;
    case 'S':
      j->times[trace::kInitReaped] = m.t[0];
      j->haveStatus = true;
      j->commandStatus = m.value;
      break;
  }
}

// One packet, with at most one passed fd (any others are closed). Its sender may be the job's pid 1:
// nothing of it is trusted to be well-formed.
ssize_t recvMsg(int fd, proto::Msg& m, Fd& passed) {
  passed.reset();
  ssize_t n = recvWithFds(fd, &m, sizeof m, [&](int f) {
    if (!passed.valid()) passed.reset(f);
    else Fd{f}.reset();
  });
  endStrings(m.error);
  return n;
}

// Read every pending message; returns false on EOF/error (stop polling the socket).
bool drainSync(Job* j) {
  for (;;) {
    proto::Msg m;
    Fd passed;
    ssize_t n = recvMsg(j->syncFd.get(), m, passed);
    if (passed.valid() && m.tag == 'N' && !j->mntns.valid()) j->mntns = std::move(passed);
    if (passed.valid() && m.tag == 'T' && j->spec.tty && !j->tty.valid()) j->tty = std::move(passed);
    if (passed.valid() && m.tag == 'O' && !j->spec.outputFiles.empty() && !j->outputs.valid()) j->outputs = std::move(passed);
    if (n == (ssize_t)sizeof m) {
      handleMsg(j, m);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return true;
    // A peer that exits with unread packets (the "G"/config it never got to) sets ECONNRESET on our
    // end, reported once before the packets still queued here (its 'F' among them): read on.
    if (n < 0 && errno == ECONNRESET) continue;
    return false;
  }
}

// A setup that has exited: a send to it fails with EPIPE, or ECONNRESET (once) when it left packets
// of ours unread; entering its uts namespace (a pooled setup, for the hostname) with ESRCH.
bool peerGone(const Error& err) {
  bool sent = strcmp(err.syscall, "send") == 0 || strcmp(err.syscall, "sendmsg") == 0;
  bool entered = strcmp(err.syscall, "setns") == 0;  // a pooled setup's uts namespace (its hostname)
  return (sent && (err.err == EPIPE || err.err == ECONNRESET)) || (entered && err.err == ESRCH);
}

// A setup that died before taking the launcher's next packet: its own report ('F'/'E'), if queued.
bool queuedFailure(int fd, Error& err) {
  for (;;) {
    proto::Msg m;
    Fd passed;
    ssize_t n = recvMsg(fd, m, passed);
    if (n < 0 && (errno == ECONNRESET || errno == EINTR)) continue;
    if (n != (ssize_t)sizeof m) return false;
    if ((m.tag == 'F' || m.tag == 'E') && m.error.err) {
      err = m.error;
      return true;
    }
  }
}

void onPollClosed(uv_handle_t* h) {
  Job* j = static_cast<Job*>(h->data);
  if (--j->openPolls == 0) delete j;
}

void stopSyncPoll(Job* j) {
  if (!j->syncPolling) return;
  j->syncPolling = false;
  uv_poll_stop(&j->syncPoll);
}

// SIGTERM, SIGRTMIN+2 (as kill -l; sigabbrev_np has no name for real-time signals), SIG32 for
// the ones glibc keeps for itself: every signal that can end a command has a name.
const char* signalName(int sig) {
  static char buf[24];
  const char* abbrev = sigabbrev_np(sig);
  if (abbrev) snprintf(buf, sizeof buf, "SIG%s", abbrev);
  else if (sig >= SIGRTMIN && sig <= SIGRTMAX) snprintf(buf, sizeof buf, "SIGRTMIN+%d", sig - SIGRTMIN);
  else snprintf(buf, sizeof buf, "SIG%d", sig);
  return buf;
}

// The records sbx-init collected (output_files.h), as one Buffer that JS parses; undefined when the
// memfd is larger than its records can be (budget, headers, paths) or cannot be read.
Napi::Value outputFilesBuffer(Napi::Env env, int fd, const spec::Spec& s) {
  struct stat st;
  const uint64_t most = s.outputFilesBytes + (uint64_t)(output_files::kMaxFiles + output_files::kMaxPatterns + 1) *
                                                 (sizeof(output_files::OutRecord) + input_files::kMaxPath);
  if (fstat(fd, &st) != 0 || st.st_size < 0 || (uint64_t)st.st_size > most) return env.Undefined();
  Napi::Buffer<uint8_t> buf = Napi::Buffer<uint8_t>::New(env, (size_t)st.st_size);
  return preadFull(fd, buf.Data(), (size_t)st.st_size, 0) == 0 ? Napi::Value(buf) : env.Undefined();
}

Napi::Object exitPayload(Job* j, const siginfo_t& si, const cgroup::Usage& u, uint64_t wallNs, int leftovers) {
  Napi::Env env(j->env);
  Napi::Object o = Napi::Object::New(env);
  // The command's own status (from sbx-init) when known; else sbx-init's (e.g. killed at timeout).
  int code = -1, sig = 0;
  if (j->haveStatus) {
    if (WIFEXITED(j->commandStatus)) code = WEXITSTATUS(j->commandStatus);
    else if (WIFSIGNALED(j->commandStatus)) sig = WTERMSIG(j->commandStatus);
  } else if (si.si_code == CLD_EXITED) {
    code = si.si_status;
  } else {
    sig = si.si_status;
  }
  o.Set("exitCode", code >= 0 ? Napi::Value(Napi::Number::New(env, code)) : env.Null());
  const char* name = sig ? signalName(sig) : nullptr;
  o.Set("signal", name ? Napi::Value(Napi::String::New(env, name)) : env.Null());
  o.Set("commandStatusKnown", j->haveStatus);
  o.Set("cpuNs", (double)u.cpuNs);
  o.Set("memoryPeakBytes", (double)u.memoryPeak);
  o.Set("oomKills", (double)u.oomKills);
  o.Set("pidsMaxEvents", (double)u.pidsMaxEvents);
  o.Set("cpuThrottledNs", (double)u.cpuThrottledNs);
  o.Set("wallNs", (double)wallNs);
  o.Set("leftoverProcesses", Napi::Number::New(env, leftovers));
  if (j->outputs.valid()) {
    Napi::Value files = outputFilesBuffer(env, j->outputs.get(), j->spec);
    if (!files.IsUndefined()) o.Set("outputFiles", files);
    j->outputs.reset();
  }
  if (j->tracing) {  // ms since launch() was entered; absent phases (0) are left out
    Napi::Object t = Napi::Object::New(env);
    for (int i = 0; i < trace::kCount; i++)
      if (j->times[i]) t.Set(trace::kNames[i], (double)(int64_t)(j->times[i] - j->times[trace::kLaunch]) / 1e6);
    o.Set("phases", t);
  }
  return o;
}

// The outcome is known: report it before the teardown (the caller answers meanwhile); the caller
// keeps the slot until "exit". The job is still in gJobs here, so a sweep() from the callback leaves
// its groups alone. `si` is pid 1's own status, used when sbx-init never reported the command's.
void emitEnded(Job* j, const siginfo_t& si, int leftovers) {
  j->endWallNs = nowNs() - j->startNs;
  cgroup::readUsage(j->group, j->endUsage);
  trace::mark(j->times, trace::kReaped);
  j->endedEmitted = true;
  emit(j, "ended", exitPayload(j, si, j->endUsage, j->endWallNs, leftovers));
  trace::mark(j->times, trace::kEnded);
  if (j->refill) {
    zygote::refill(*j->refill->host, j->refill->options, j->spec, j->refill->config, gInit.get());
    j->refill.reset();
  }
}

// sbx-init reported the command's status ('S') and is exiting: the kernel kills the rest of the pid
// namespace with it. Report the outcome now rather than after pid 1's exit has gone through the
// namespace teardown to the pidfd. SIGKILL to pid 1 first, so that from here on nothing of the job
// runs on, whoever sent the status (sbx-init holds no privilege a forged status could use).
void statusReported(Job* j) {
  if (j->endedEmitted || !j->haveStatus) return;
  Napi::HandleScope scope(Napi::Env(j->env));
  syscall(SYS_pidfd_send_signal, j->pidfd.get(), SIGKILL, nullptr, 0);
  siginfo_t none{};
  emitEnded(j, none, 0);
}

// The job's pid 1 has exited: by then the kernel has killed the rest of its pid namespace.
void onExit(uv_poll_t* h, int, int) {
  Job* j = static_cast<Job*>(h->data);
  uv_poll_stop(&j->exitPoll);
  trace::mark(j->times, trace::kExitSeen);
  Napi::Env env(j->env);
  Napi::HandleScope scope(env);
  if (j->syncPolling) drainSync(j);
  stopSyncPoll(j);
  siginfo_t si{};
  syscall(SYS_waitid, P_PIDFD, j->pidfd.get(), &si, WEXITED, nullptr);
  // Normally empty already (the kernel killed the pid namespace with its init); remove() kills
  // whatever is still there (freeze, SIGKILL, thaw) before the rmdir.
  int leftovers = (int)cgroup::readProcs(j->group.dirs.empty() ? "" : j->group.pids).size();
  if (!j->endedEmitted) emitEnded(j, si, leftovers);
  Error rmErr;
  cgroup::remove(j->group, rmErr);
  trace::mark(j->times, trace::kCgroupRemoved);
  gJobs.erase(j->handle);
  Napi::Object payload = exitPayload(j, si, j->endUsage, j->endWallNs, leftovers);
  if (rmErr.err) payload.Set("cleanupError", errorPayload(env, rmErr));
  emit(j, "exit", payload);
  uv_close(reinterpret_cast<uv_handle_t*>(&j->exitPoll), onPollClosed);
  uv_close(reinterpret_cast<uv_handle_t*>(&j->syncPoll), onPollClosed);
}

void onSync(uv_poll_t* h, int status, int) {
  Job* j = static_cast<Job*>(h->data);
  // A peer that exited with our packets unread leaves ECONNRESET pending: epoll says POLLERR, which
  // libuv reports as status UV_EBADF (and stops the poll). Its packets are still queued here (its
  // 'F'/'E' among them): read them before giving up on the socket.
  bool open = drainSync(j);
  if (status < 0 || !open) stopSyncPoll(j);
  statusReported(j);
}

void buildInitArgs(Job& j) {
  static char kName[] = "sbx-init";
  j.initArgv.push_back(kName);
  for (auto& a : j.spec.argv) j.initArgv.push_back(a.data());
  j.initArgv.push_back(nullptr);
  for (auto& e : j.spec.env) j.initEnvp.push_back(e.data());
  j.initEnvp.push_back(nullptr);
}

// Kill and reap a child that never got going (undo of clone).
void abortChild(Job& j) {
  syscall(SYS_pidfd_send_signal, j.pidfd.get(), SIGKILL, nullptr, 0);
  siginfo_t si;
  syscall(SYS_waitid, P_PIDFD, j.pidfd.get(), &si, WEXITED, nullptr);
}

bool sendAll(int fd, const void* data, size_t len, Error& err) {
  if (send(fd, data, len, MSG_NOSIGNAL) != (ssize_t)len) return fail(err, "sync", "send", "", errno);
  return true;
}

}  // namespace

bool loadInit(const std::string& path, Error& err) {
  if (gInit.valid()) return true;
  Fd src(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!src.valid()) return fail(err, "init-load", "open", path.c_str(), errno, kHost);
  Fd mem((int)syscall(SYS_memfd_create, "sbx-init", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!mem.valid()) return fail(err, "init-load", "memfd_create", "", errno, kHost);
  char buf[65536];
  ssize_t n;
  while ((n = read(src.get(), buf, sizeof buf)) > 0)
    if (write(mem.get(), buf, (size_t)n) != n) return fail(err, "init-load", "write", "memfd", errno, kHost);
  if (n < 0) return fail(err, "init-load", "read", path.c_str(), errno, kHost);
  fchmod(mem.get(), 0555);
  if (fcntl(mem.get(), F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) != 0)
    return fail(err, "init-load", "fcntl(F_ADD_SEALS)", "memfd", errno, kHost);
  RETURN_ON_FAILURE(raiseFd(mem, err));
  gInit = std::move(mem);
  return true;
}

namespace {

// Launcher ends (kept) and child ends (closed once clone has copied them), all O_CLOEXEC; the
// child ends are >= kMinFd so the child's dup3() onto 0..4 cannot clobber one of them.
struct LaunchFds {
  Fd outR, outW, errR, errW, inR, inW, syncP, syncC, netns, files;
  Fd listen;  // spec.listenPort: the listening socket in the job's network namespace (given to the caller)
};

bool checkHost(const cgroup::Host& host, const spec::Options& o, Error& err) {
  if (!gInit.valid()) return fail(err, "init-load", "", "sbx-init not loaded", ENOENT, kHost);
  if (host.mode == cgroup::Mode::kNone || (!host.missing.empty() && o.cgroupV2Root.empty()))
    return fail(err, "host", "", host.missing.empty() ? "" : host.missing[0].c_str(), ENOSYS, kHost);
  if (gPreparedStateDirs.count(o.stateDir)) return true;
  RETURN_ON_FAILURE(mnt::prepareStateDir(o.stateDir, err));
  gPreparedStateDirs.insert(o.stateDir);
  return true;
}

// The host's "/" (O_PATH), for a child in the base mount namespace (child.h hostRootFd).
int hostRoot() {
  static const int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  return fd;
}

// The slot's user namespace (usernsFd -1 without one) and the host id of its root.
bool slotUserns(const spec::Spec& s, const spec::Options& o, int& usernsFd, uint32_t& hostBase, Error& err) {
  usernsFd = -1;
  hostBase = 0;
  if (!o.userns) return true;
  bool idsOk = s.uid < userns::kRange && s.gid < userns::kRange;
  for (uint32_t g : s.groups) idsOk &= g < userns::kRange;
  if (!idsOk) return fail(err, "spec", "", "uid/gid/groups must be < 65536 with a user namespace", EINVAL, kInvalidSpec);
  RETURN_ON_FAILURE(userns::slotFd(o.uidBase, s.slot, usernsFd, err));
  hostBase = o.uidBase + s.slot * userns::kRange;
  return true;
}

// Everything the child and sbx-init will read: user namespace, mount program, argv/env, config.
bool preparePlan(Job& j, const cgroup::Host& host, const spec::Options& o, std::string& config, Error& err) {
  const spec::Spec& s = j.spec;
  int usernsFd = -1;
  uint32_t hostBase = 0;
  RETURN_ON_FAILURE(slotUserns(s, o, usernsFd, hostBase, err));
  // In the base mount namespace every image layer is attached, from a clone the child makes of its
  // path before it joins that namespace (layerFds of -1). Without it, the child copies ours.
  const int baseMntns = hostRoot() >= 0 ? mnt::baseNamespace(o) : -1;
  const std::vector<int> layerFds(s.lowerDirs.size(), -1);
  RETURN_ON_FAILURE(mnt::buildOps(s, o, usernsFd, hostBase, j.arena, j.ops, err, baseMntns >= 0 ? &layerFds : nullptr));
  buildInitArgs(j);
  RETURN_ON_FAILURE(init_config::build(j.spec, o, config, err));
  cgroup::plan(host, o.cgroupParent, s.id, o.devicesCgroup, j.group);
  j.joinFiles = cgroup::selfJoinFiles(j.group);
  for (const auto& f : j.joinFiles) j.joinPtrs.push_back(f.c_str());
  j.args = child::Args{-1, -1, -1, -1, gInit.get(), j.ops.data(), j.ops.size(), s.hostname.c_str(), s.hostname.size(),
                       j.initArgv.data(), j.initEnvp.data(), j.joinPtrs.data(), j.joinPtrs.size(), usernsFd, -1,
                       j.tracing ? j.times : nullptr, false, nullptr, -1, baseMntns, baseMntns >= 0 ? hostRoot() : -1};
  trace::mark(j.times, trace::kPlanned);
  return true;
}

bool openStdio(Job& j, LaunchFds& f, Error& err) {
  RETURN_ON_FAILURE(makePipe(f.outR, f.outW, err));
  RETURN_ON_FAILURE(makePipe(f.errR, f.errW, err));
  if (j.spec.stdinPipe) return makePipe(f.inR, f.inW, err);
  f.inR.reset(open("/dev/null", O_RDONLY | O_CLOEXEC));
  return f.inR.valid() || fail(err, "fds", "open", "/dev/null", errno);
}

bool openFds(Job& j, LaunchFds& f, Error& err) {
  RETURN_ON_FAILURE(openStdio(j, f, err));
  RETURN_ON_FAILURE(input_files::pack(j.spec, f.files, err));
  if (f.files.valid()) RETURN_ON_FAILURE(raiseFd(f.files, err));
  j.args.filesFd = f.files.get();
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return fail(err, "sync", "socketpair", "", errno);
  f.syncP.reset(sv[0]);
  f.syncC.reset(sv[1]);
  RETURN_ON_FAILURE(raiseFd(f.outW, err) && raiseFd(f.errW, err) && raiseFd(f.inR, err) && raiseFd(f.syncC, err));
  if (j.spec.listenPort) {  // the listener exists before the child is cloned, so before the command runs
    RETURN_ON_FAILURE(ns::takeOrMakeNetns(f.netns, err) && ns::listenIn(f.netns.get(), j.spec.listenPort, f.listen, err));
  } else {
    f.netns = ns::takeNetns();  // none: the child makes its own
  }
  trace::mark(j.times, trace::kFdsOpen);
  j.args.syncFd = f.syncC.get();
  j.args.stdinFd = f.inR.get();
  j.args.stdoutFd = f.outW.get();
  j.args.stderrFd = f.errW.get();
  j.args.netFd = f.netns.get();
  child::keepOnly(j.args, j.keptFds);
  j.stack = ns::mapStack(kStackSize);
  return j.stack || fail(err, "clone", "mmap", "stack", errno);
}

// The config with proto::kFiles: sbx-init writes the files it finds on kInitFilesFd. Only a direct
// launch's config says so (a pooled setup's config, made before its job was known, must match the
// next job's whether or not it has files: the job message carries them instead).
std::string withFilesFlag(const std::string& config) {
  std::string out = config;
  proto::InitConfig h;
  memcpy(&h, out.data(), sizeof h);
  h.flags |= proto::kFiles;
  memcpy(&out[0], &h, sizeof h);
  return out;
}

// clone, cgroups, go. v2 joins at clone time, so its group must exist first; v1 groups are made
// while the child unshares its namespaces (in parallel), and the child joins them itself.
bool startChild(Job& j, const cgroup::Host& host, const spec::Options& o, LaunchFds& f, const std::string& config,
                Error& err) {
  struct GroupUndo {
    cgroup::Group* g = nullptr;
    ~GroupUndo() { if (g) { Error e; cgroup::remove(*g, e); } }
  } undo;
  if (j.group.v2) {
    RETURN_ON_FAILURE(cgroup::create(host, o.cgroupParent, j.spec.limits, j.group, err));
    undo.g = &j.group;
  }
  j.startNs = nowNs();
  ns::Clone c;
  RETURN_ON_FAILURE(ns::cloneChild(ns::kCloneFlags, j.group.v2 ? j.group.dirFd.get() : -1, j.stack, kStackSize,
                                   child::main, &j.args, c, err));
  j.pid = c.pid;
  j.pidfd = std::move(c.pidfd);
  trace::mark(j.times, trace::kCloned);
  for (Fd* childEnd : {&f.syncC, &f.netns, &f.outW, &f.errW, &f.inR, &f.files}) childEnd->reset();  // it has copies
  bool ok = j.group.v2 || cgroup::create(host, o.cgroupParent, j.spec.limits, j.group, err);
  undo.g = &j.group;
  const bool payload = input_files::hasPayload(j.spec);
  const std::string flagged = payload ? withFilesFlag(config) : std::string();
  const std::string& sent = payload ? flagged : config;
  if (!ok || !sendAll(f.syncP.get(), "G", 1, err) || !sendAll(f.syncP.get(), sent.data(), sent.size(), err)) {
    // The child failed its setup (e.g. a layer that cannot be mounted) and exited before our send:
    // its queued report says why, not the EPIPE/ECONNRESET of the send.
    if (peerGone(err)) queuedFailure(f.syncP.get(), err);
    abortChild(j);
    return false;
  }
  undo.g = nullptr;
  trace::mark(j.times, trace::kGoSent);
  return true;
}

// ---- pooled launches (zygote.h) ----

// The job's config, cgroup names and job message (its mounts were made with the setup, for the same
// image); false (err unset) when the job message would be too large: the direct path then.
bool preparePooled(Job& j, const cgroup::Host& host, const spec::Options& o, std::string& config, std::string& msg,
                   Error& err) {
  int usernsFd = -1;
  uint32_t hostBase = 0;
  RETURN_ON_FAILURE(slotUserns(j.spec, o, usernsFd, hostBase, err));
  RETURN_ON_FAILURE(init_config::build(j.spec, o, config, err));
  cgroup::plan(host, o.cgroupParent, j.spec.id, o.devicesCgroup, j.group);
  return zygote::encodeJob(j.spec, msg);
}

// The job message with the job's stdin, stdout, stderr (and input files, if any), to the waiting sbx-init.
bool sendJob(int sock, const std::string& msg, const LaunchFds& f, Error& err) {
  struct iovec iov = {const_cast<char*>(msg.data()), msg.size()};
  alignas(struct cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * 4)] = {};
  const int fds[4] = {f.inR.get(), f.outW.get(), f.errW.get(), f.files.get()};
  const size_t nfds = f.files.valid() ? 4 : 3;
  struct msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = cbuf;
  mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
  struct cmsghdr* c = CMSG_FIRSTHDR(&mh);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
  memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  if (sendmsg(sock, &mh, MSG_NOSIGNAL) != (ssize_t)msg.size()) return fail(err, "pool", "sendmsg", "", errno);
  return true;
}

// The job's groups become the setup's: v1 renames them to the job's name; a v2 group cannot be
// renamed (nor its process moved: its cgroup namespace is rooted there), so the job keeps the
// setup's group, pool-<launcher pid>-<n> (Launched.cgroups names it).
bool adoptGroup(zygote::Zygote& z, Job& j, Error& err) {
  if (!z.group.v2) return cgroup::v1::rename(z.group, j.group, err);
  j.group = std::move(z.group);
  z.group = cgroup::Group();
  return true;
}

// Set the job's hostname in the setup's uts namespace (its sbx-init has dropped the privilege to),
// send it the job, write the job's limits where they differ from the ones its groups were made
// with, then "G" (sbx-init starts nothing of the job before it: the limits are in place by then),
// then make its groups the job's.
bool startPooled(Job& j, std::unique_ptr<zygote::Zygote> z, const cgroup::Host& host, LaunchFds& f,
                 const std::string& msg, Error& err) {
  j.startNs = nowNs();
  bool renamed = false;
  bool ok = ns::setHostnameOf(z->pidfd.get(), j.spec.hostname.c_str(), j.spec.hostname.size(), err) &&
            (j.spec.listenPort == 0 || ns::listenIn(z->netns.get(), j.spec.listenPort, f.listen, err)) &&
            openStdio(j, f, err) && input_files::pack(j.spec, f.files, err) && sendJob(z->sync.get(), msg, f, err);
  trace::mark(j.times, trace::kCloned);
  for (Fd* childEnd : {&f.outW, &f.errW, &f.inR, &f.files}) childEnd->reset();  // it has copies (or never will)
  ok = ok && (cgroup::sameLimits(z->limits, j.spec.limits) || cgroup::changeLimits(host, z->limits, j.spec.limits, z->group, err)) &&
       sendAll(z->sync.get(), "G", 1, err) && (renamed = adoptGroup(*z, j, err));
  if (!ok) {
    // The pooled sbx-init failed the job's own setup (e.g. a layer that cannot be mounted) and
    // exited, perhaps after take() found it alive: its report says why, not the EPIPE of our send
    // or the ESRCH of entering its namespace.
    if (peerGone(err)) queuedFailure(z->sync.get(), err);
    if (renamed) {  // the job's group now: killed and removed with the job (not reached: adopting is last)
      j.pidfd = std::move(z->pidfd);
      abortChild(j);
      Error ignored;
      cgroup::remove(j.group, ignored);
    }
    zygote::discard(std::move(z));
    return false;
  }
  j.pid = z->pid;
  j.pidfd = std::move(z->pidfd);
  j.mntns = std::move(z->mntns);
  j.times[trace::kPoolReady] = z->ready ? j.times[trace::kLaunch] + 1 : 0;  // a flag, as "poolReady" 1e-6 ms
  f.syncP = std::move(z->sync);
  j.zygote = std::move(z);
  trace::mark(j.times, trace::kGoSent);
  return true;
}

// Watch the pidfd (exit) and the sync socket (exec result, status) on the JS thread's loop.
void watch(Job& j, Napi::Env env, Napi::Function onEvent, LaunchFds& f) {
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  j.syncFd = std::move(f.syncP);
  j.env = env;
  j.onEvent = Napi::Persistent(onEvent);
  j.asyncContext.reset(new Napi::AsyncContext(env, "sbx:job"));
  j.handle = gNextHandle++;
  uv_poll_init(loop, &j.exitPoll, j.pidfd.get());
  uv_poll_init(loop, &j.syncPoll, j.syncFd.get());
  j.exitPoll.data = j.syncPoll.data = &j;
  j.openPolls = 2;
  uv_poll_start(&j.exitPoll, UV_READABLE, onExit);
  uv_poll_start(&j.syncPoll, UV_READABLE, onSync);
  j.syncPolling = true;
  gJobs[j.handle] = &j;
}

}  // namespace

Job* launch(Napi::Env env, const spec::Spec& s, const spec::Options& o, Napi::Function onEvent, int& pid, Fds& fds,
            Error& err) {
  const cgroup::Host& host = cgroup::host(o.cgroupV2Root);
  std::unique_ptr<Job> j(new Job());
  j->tracing = o.trace;
  trace::mark(j->times, trace::kLaunch);
  j->spec = s;
  std::string config, msg;
  LaunchFds f;
  if (!checkHost(host, o, err) || !cgroup::limitParent(host, o.cgroupParent, o.parentMemoryBytes, o.parentPids, err))
    return nullptr;
  bool pooling = zygote::usable(host, o);
  bool ok;
  std::unique_ptr<zygote::Zygote> z;
  if (pooling && preparePooled(*j, host, o, config, msg, err) && (z = zygote::take(zygote::key(o, s.slot), s, config))) {
    trace::mark(j->times, trace::kPlanned);
    ok = startPooled(*j, std::move(z), host, f, msg, err);
  } else if (err.err) {
    ok = false;  // the spec itself is refused (the direct path would refuse it too)
  } else {
    uint64_t t0 = j->times[trace::kLaunch];
    j.reset(new Job());  // nothing of the pooled plan is kept
    j->tracing = o.trace;
    j->times[trace::kLaunch] = t0;
    j->spec = s;
    config.clear();
    ok = preparePlan(*j, host, o, config, err) && openFds(*j, f, err) && startChild(*j, host, o, f, config, err);
  }
  // The slot's next setups: made once this job's outcome is known (emitEnded), so that making them
  // does not compete with this job for the CPUs while it runs; at once if it did not start.
  if (pooling && !ok && !config.empty()) zygote::refill(host, o, s, config, gInit.get());
  if (!ok) return nullptr;
  if (pooling) j->refill.reset(new Job::Refill{&host, o, config});
  watch(*j, env, onEvent, f);
  pid = j->pid;
  fds.stdoutFd = f.outR.release();
  fds.stderrFd = f.errR.release();
  fds.stdinFd = s.stdinPipe ? f.inW.release() : -1;
  fds.listenFd = f.listen.release();
  return j.release();
}

namespace {

// The job of `handle`, or null once it has exited (or never was).
Job* byHandle(int handle) {
  auto it = gJobs.find(handle);
  return it == gJobs.end() ? nullptr : it->second;
}

}  // namespace

bool signal(int handle, int sig) {
  Job* j = byHandle(handle);
  // To the job's pid 1 (sbx-init), which forwards it to the command (docker kill -s).
  return j && syscall(SYS_pidfd_send_signal, j->pidfd.get(), sig, nullptr, 0) == 0;
}

bool kill(int handle) {
  Job* j = byHandle(handle);
  // SIGKILL to pid 1 of the job's pid namespace: the kernel kills every process in it.
  return j && syscall(SYS_pidfd_send_signal, j->pidfd.get(), SIGKILL, nullptr, 0) == 0;
}

bool stop(int handle) {
  Job* j = byHandle(handle);
  // Only a running command's sbx-init reads it (before 'X' it may still be the setup child's socket).
  if (!j || !j->execReported || j->haveStatus || j->spec.outputFiles.empty()) return false;
  return send(j->syncFd.get(), "K", 1, MSG_DONTWAIT | MSG_NOSIGNAL) == 1;
}

bool live(int handle, cgroup::Live& l) {
  Job* j = byHandle(handle);
  if (j) cgroup::readLive(j->group, l);
  return j != nullptr;
}

bool setCpuShares(int handle, uint32_t shares, Error& err) {
  Job* j = byHandle(handle);
  if (!j) return false;
  return cgroup::writeCpuShares(j->group, shares, err);
}

size_t liveJobs() { return gJobs.size(); }

std::set<std::string> liveGroupDirs() {
  std::set<std::string> dirs;
  for (const auto& [handle, j] : gJobs) dirs.insert(j->group.dirs.begin(), j->group.dirs.end());
  return dirs;
}
int handleOf(const Job* j) { return j->handle; }
const std::vector<std::string>& groupDirsOf(const Job* j) { return j->group.dirs; }

}  // namespace sbx::job
