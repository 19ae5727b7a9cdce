// pipe_drop.h: splice to /dev/null on the JS thread's loop.
#include "pipe_drop.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <uv.h>

#include <map>
#include <memory>
#include <mutex>

#include "fd.h"

namespace sbx::pipe_drop {
namespace {

// Splices per readiness before the loop serves others: a writer as fast as the drop keeps the pipe
// readable, and the loop must go round.
constexpr int kSplicesPerWake = 16;
constexpr size_t kSpliceBytes = 1 << 20;
// The pipe is grown to this (when the host lets it), and a wake that found less than kSmallWake in
// it waits kRestMs before looking again: a writer of small pieces (`yes` writes 8 KiB at a time)
// otherwise woke the loop for each one, and the drop cost the worker half a CPU; now its pieces are
// dropped a pipeful at a time. A pipe that fills during the rest blocks its writer: at most one
// pipeful per rest, ~500 MiB/s with 1 MiB.
constexpr int kPipeBytes = 1 << 20;
constexpr double kSmallWake = 256 * 1024;
constexpr uint64_t kRestMs = 2;

struct Drop {
  int handle = 0;
  napi_env env = nullptr;
  Fd fd;
  uv_poll_t poll{};
  uv_timer_t rest{};
  int openHandles = 0;
  double bytes = 0;
  // uv_hrtime() at the wake that last dropped bytes; 0: none yet. Polled only every
  // outputIdleTimeoutMs, the drop's progress alone would place the job's latest output at the
  // poll, and a job that wrote past its cap and then went silent ran up to twice its limit.
  uint64_t lastDropNs = 0;
  Napi::FunctionReference onEnd;
  std::unique_ptr<Napi::AsyncContext> asyncContext;
};

// Every environment's drops (the addon may be loaded by worker threads too): the table is shared,
// each Drop used only on its own environment's thread, and found only from there (find()).
std::mutex gMu;
std::map<int, Drop*> gDrops;
int gNextHandle = 1;

Drop* find(napi_env env, int handle) {
  std::lock_guard<std::mutex> lock(gMu);
  auto it = gDrops.find(handle);
  return it == gDrops.end() || it->second->env != env ? nullptr : it->second;
}

void onEnvTeardown(void* arg);

int devNull() {
  static int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
  return fd;
}

void onClosed(uv_handle_t* h) {
  Drop* d = static_cast<Drop*>(h->data);
  if (--d->openHandles == 0) delete d;
}

// Out of the table and off the loop; the Drop is freed once libuv lets go of its handles.
void forget(Drop* d, bool inTeardown = false) {
  {
    std::lock_guard<std::mutex> lock(gMu);
    gDrops.erase(d->handle);
  }
  if (!inTeardown) napi_remove_env_cleanup_hook(d->env, onEnvTeardown, d);
  uv_poll_stop(&d->poll);
  uv_timer_stop(&d->rest);
  uv_close(reinterpret_cast<uv_handle_t*>(&d->poll), onClosed);
  uv_close(reinterpret_cast<uv_handle_t*>(&d->rest), onClosed);
}

// The environment goes (a worker thread ends, the process exits) with the drop running: its
// handles closed before its loop is (a loop closed with them open aborted the process: "uv_loop_close()
// while having open handles"), its callback let go while the environment can still take it. onEnd
// is not called: no JavaScript runs any more.
void onEnvTeardown(void* arg) {
  Drop* d = static_cast<Drop*>(arg);
  d->onEnd.Reset();
  d->asyncContext.reset();
  forget(d, true);
}

void onReadable(uv_poll_t* p, int status, int);

void onRested(uv_timer_t* t) {
  Drop* d = static_cast<Drop*>(t->data);
  uv_poll_start(&d->poll, UV_READABLE, onReadable);
}

double agoMs(const Drop* d) {
  return d->lastDropNs == 0 ? -1 : (double)(uv_hrtime() - d->lastDropNs) / 1e6;
}

void end(Drop* d, int err) {
  Napi::Env env(d->env);
  Napi::HandleScope scope(env);
  Napi::FunctionReference onEnd = std::move(d->onEnd);
  std::unique_ptr<Napi::AsyncContext> context = std::move(d->asyncContext);
  const double bytes = d->bytes;
  const double ago = agoMs(d);
  forget(d);
  onEnd.MakeCallback(env.Global(), {Napi::Number::New(env, bytes), Napi::Number::New(env, err), Napi::Number::New(env, ago)}, *context);
}

// What one look at the pipe dropped: its bytes, and whether the pipe ended there (`err` 0: every
// writer closed it and it is empty; else the errno it failed with).
struct Look {
  double bytes = 0;
  bool ended = false;
  int err = 0;
};

// Up to kSplicesPerWake splices of what the pipe holds to /dev/null, counted, until it is empty for now.
Look dropWhatIsThere(Drop* d) {
  Look look;
  for (int i = 0; i < kSplicesPerWake; i++) {
    const ssize_t n = splice(d->fd.get(), nullptr, devNull(), nullptr, kSpliceBytes, SPLICE_F_NONBLOCK);
    if (n > 0) {
      if (look.bytes == 0) d->lastDropNs = uv_hrtime();
      look.bytes += (double)n;
      d->bytes += (double)n;
    } else if (n == 0) {
      look.ended = true;
      break;
    } else if (errno == EAGAIN) {
      break;
    } else if (errno != EINTR) {
      look.ended = true;
      look.err = errno;
      break;
    }
  }
  return look;
}

void onReadable(uv_poll_t* p, int status, int) {
  Drop* d = static_cast<Drop*>(p->data);
  if (status < 0) return end(d, -status);
  const Look look = dropWhatIsThere(d);
  if (look.ended) return end(d, look.err);
  if (look.bytes < kSmallWake) {
    uv_poll_stop(&d->poll);
    uv_timer_start(&d->rest, onRested, kRestMs, 0);
  }
}

}  // namespace

int start(Napi::Env env, int fd, Napi::Function onEnd, Error& err) {
  struct stat st;
  if (fstat(fd, &st) != 0) return fail(err, "output-drop", "fstat", "", errno), -1;
  if (!S_ISFIFO(st.st_mode)) return fail(err, "output-drop", "fstat", "", EINVAL), -1;
  if (devNull() < 0) return fail(err, "output-drop", "open", "/dev/null", errno), -1;
  auto d = std::make_unique<Drop>();
  d->fd.reset(fcntl(fd, F_DUPFD_CLOEXEC, 10));
  if (!d->fd.valid()) return fail(err, "output-drop", "fcntl", "", errno), -1;
  // The duplicate shares the open file, and with it O_NONBLOCK: set it whoever opened it.
  const int flags = fcntl(d->fd.get(), F_GETFL);
  if (flags < 0 || fcntl(d->fd.get(), F_SETFL, flags | O_NONBLOCK) != 0) return fail(err, "output-drop", "fcntl", "", errno), -1;
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  fcntl(d->fd.get(), F_SETPIPE_SZ, kPipeBytes);  // refused (pipe-max-size, the user's pipe pages): the drop only wakes more often
  const int rc = uv_poll_init(loop, &d->poll, d->fd.get());
  if (rc != 0) return fail(err, "output-drop", "uv_poll_init", "", -rc), -1;
  uv_timer_init(loop, &d->rest);
  Drop* raw = d.release();
  raw->openHandles = 2;
  raw->poll.data = raw->rest.data = raw;
  raw->env = env;
  raw->onEnd = Napi::Persistent(onEnd);
  raw->asyncContext.reset(new Napi::AsyncContext(env, "sbx:output-drop"));
  {
    std::lock_guard<std::mutex> lock(gMu);
    raw->handle = gNextHandle++;
    gDrops[raw->handle] = raw;
  }
  napi_add_env_cleanup_hook(env, onEnvTeardown, raw);
  uv_poll_start(&raw->poll, UV_READABLE, onReadable);
  return raw->handle;
}

double stop(Napi::Env env, int handle) {
  Drop* d = find(env, handle);
  if (d == nullptr) return -1;
  // What the pipe holds now was written too: dropped and counted before the pipe is closed (up to a
  // wake's worth: a writer still at it is what stop() is for). Before, a stop during a rest or
  // before the loop came round left it uncounted, up to a pipeful (1 MiB).
  dropWhatIsThere(d);
  const double bytes = d->bytes;
  forget(d);
  return bytes;
}

double soFar(Napi::Env env, int handle) {
  const Drop* d = find(env, handle);
  return d == nullptr ? -1 : d->bytes;
}

double lastAgoMs(Napi::Env env, int handle) {
  const Drop* d = find(env, handle);
  return d == nullptr ? -1 : agoMs(d);
}

}  // namespace sbx::pipe_drop
