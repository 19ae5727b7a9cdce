// Module entry: argument checks and JS <-> struct conversion only (style.md).
#include <napi.h>
#include <string.h>

#include "cgroup.h"
#include "host_probe.h"
#include "job.h"
#include "pipe_drop.h"
#include "spec.h"
#include "tty.h"
#include "zygote.h"

namespace sbx {
namespace {

const char* codeOf(const Error& e) {
  switch (e.kind) {
    case kInvalidSpec: return "invalid_spec";
    case kCommandNotFound: return "command_not_found";
    case kHost: return "host_unsupported";
    default: {
      const char* n = strerrorname_np(e.err);
      return n ? n : "EUNKNOWN";
    }
  }
}

Napi::Error toJsError(Napi::Env env, const Error& e) {
  std::string msg = std::string(e.stage);
  if (e.syscall[0]) msg += ": " + std::string(e.syscall);
  if (e.path[0]) msg += " `" + std::string(e.path) + "`";
  msg += ": " + std::string(strerrorname_np(e.err) ? strerrorname_np(e.err) : "E?") + " (" + strerror(e.err) + ")";
  Napi::Error err = Napi::Error::New(env, msg);
  err.Set("code", codeOf(e));
  err.Set("errno", Napi::Number::New(env, e.err));
  err.Set("syscall", e.syscall);
  err.Set("path", e.path);
  err.Set("stage", e.stage);
  return err;
}

Napi::Value Throw(Napi::Env env, const Error& e) {
  toJsError(env, e).ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) return Throw(env, Error{EINVAL, kInvalidSpec, "init", "", "initPath must be a string"});
  Error err;
  if (!job::loadInit(info[0].As<Napi::String>().Utf8Value(), err)) return Throw(env, err);
  return env.Undefined();
}

Napi::Value Probe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  host::Probe p = host::probe();
  Napi::Object o = Napi::Object::New(env);
  o.Set("cgroup", p.cgroup == cgroup::Mode::kV2 ? "v2" : p.cgroup == cgroup::Mode::kV1 ? "v1" : "none");
  Napi::Array missing = Napi::Array::New(env);
  for (const auto& m : p.missing) missing.Set(missing.Length(), m);
  Napi::Object f = Napi::Object::New(env);
  for (const auto& [name, present] : p.features) f.Set(name, present);
  o.Set("missing", missing);
  o.Set("ok", p.missing.empty());
  o.Set("features", f);
  return o;
}

Napi::Value Launch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  spec::Spec s;
  spec::Options o;
  Error err;
  if (!spec::fromJs(info[0], s, err) || !spec::optionsFromJs(info[1], o, err)) return Throw(env, err);
  if (!info[2].IsFunction()) return Throw(env, Error{EINVAL, kInvalidSpec, "launch", "", "onEvent must be a function"});
  int pid = -1;
  job::Fds fds;
  job::Job* j = job::launch(env, s, o, info[2].As<Napi::Function>(), pid, fds, err);
  if (!j) return Throw(env, err);
  Napi::Object r = Napi::Object::New(env);
  r.Set("handle", job::handleOf(j));
  r.Set("pid", pid);
  r.Set("stdoutFd", fds.stdoutFd);
  r.Set("stderrFd", fds.stderrFd);
  r.Set("stdinFd", fds.stdinFd);
  r.Set("listenFd", fds.listenFd);
  const auto& dirs = job::groupDirsOf(j);
  Napi::Array cgroups = Napi::Array::New(env, dirs.size());
  for (size_t i = 0; i < dirs.size(); i++) cgroups.Set((uint32_t)i, dirs[i]);
  r.Set("cgroups", cgroups);
  return r;
}

Napi::Value DropPipe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || !info[1].IsFunction()) return Throw(env, Error{EINVAL, kInvalidSpec, "output-drop", "", "dropPipe(fd, onEnd)"});
  Error err;
  const int handle = pipe_drop::start(env, info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Function>(), err);
  if (handle < 0) return Throw(env, err);
  return Napi::Number::New(env, handle);
}

Napi::Value DroppedSoFar(const Napi::CallbackInfo& info) {
  if (!info[0].IsNumber()) return Napi::Number::New(info.Env(), -1);
  return Napi::Number::New(info.Env(), pipe_drop::soFar(info.Env(), info[0].As<Napi::Number>().Int32Value()));
}

Napi::Value DroppedAgoMs(const Napi::CallbackInfo& info) {
  if (!info[0].IsNumber()) return Napi::Number::New(info.Env(), -1);
  return Napi::Number::New(info.Env(), pipe_drop::lastAgoMs(info.Env(), info[0].As<Napi::Number>().Int32Value()));
}

Napi::Value StopDrop(const Napi::CallbackInfo& info) {
  if (!info[0].IsNumber()) return Napi::Number::New(info.Env(), -1);
  return Napi::Number::New(info.Env(), pipe_drop::stop(info.Env(), info[0].As<Napi::Number>().Int32Value()));
}

Napi::Value Kill(const Napi::CallbackInfo& info) {
  if (!info[0].IsNumber()) return Napi::Boolean::New(info.Env(), false);
  return Napi::Boolean::New(info.Env(), job::kill(info[0].As<Napi::Number>().Int32Value()));
}

Napi::Value Stop(const Napi::CallbackInfo& info) {
  if (!info[0].IsNumber()) return Napi::Boolean::New(info.Env(), false);
  return Napi::Boolean::New(info.Env(), job::stop(info[0].As<Napi::Number>().Int32Value()));
}

Napi::Value Signal(const Napi::CallbackInfo& info) {
  if (!info[0].IsNumber() || !info[1].IsNumber()) return Napi::Boolean::New(info.Env(), false);
  int sig = info[1].As<Napi::Number>().Int32Value();
  if (sig < 1 || sig > 64) return Napi::Boolean::New(info.Env(), false);
  return Napi::Boolean::New(info.Env(), job::signal(info[0].As<Napi::Number>().Int32Value(), sig));
}

// ttyResize(fd, rows, cols): TIOCSWINSZ on a pty master fd the launcher handed out.
Napi::Value TtyResize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber())
    return Throw(env, Error{EINVAL, kInvalidSpec, "tty", "", "ttyResize(fd, rows, cols)"});
  double rows = info[1].As<Napi::Number>().DoubleValue(), cols = info[2].As<Napi::Number>().DoubleValue();
  if (!(rows >= 0 && rows <= 65535 && cols >= 0 && cols <= 65535))
    return Throw(env, Error{EINVAL, kInvalidSpec, "tty", "", "rows and cols must be 0..65535"});
  Error err;
  if (!tty::resize(info[0].As<Napi::Number>().Int32Value(), (uint32_t)rows, (uint32_t)cols, err)) return Throw(env, err);
  return env.Undefined();
}

Napi::Value Live(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  cgroup::Live l;
  if (!info[0].IsNumber() || !job::live(info[0].As<Napi::Number>().Int32Value(), l)) return env.Null();
  Napi::Object o = Napi::Object::New(env);
  o.Set("cpuNs", (double)l.cpuNs);
  o.Set("memoryBytes", (double)l.memoryBytes);
  o.Set("memoryPeakBytes", (double)l.memoryPeak);
  o.Set("pids", (double)l.pids);
  return o;
}

Napi::Value SetCpuShares(const Napi::CallbackInfo& info) {
  if (!info[0].IsNumber() || !info[1].IsNumber()) return Napi::Boolean::New(info.Env(), false);
  Error err;
  const double shares = info[1].As<Napi::Number>().DoubleValue();
  if (!(shares >= 2 && shares <= 262144)) return Throw(info.Env(), Error{EINVAL, kInvalidSpec, "cgroup-cpu-weight", "", "shares must be 2..262144"});
  return Napi::Boolean::New(info.Env(), job::setCpuShares(info[0].As<Napi::Number>().Int32Value(), (uint32_t)shares, err));
}

Napi::Value Sweep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  spec::Options o;
  Error err;
  if (!spec::optionsFromJs(info[0], o, err)) return Throw(env, err);
  int processes = 0, left = 0;
  std::set<std::string> keep = job::liveGroupDirs(), pooled = zygote::groupDirs();  // this process's jobs and pooled setups
  keep.insert(pooled.begin(), pooled.end());
  int groups = cgroup::sweep(cgroup::host(o.cgroupV2Root), o.cgroupParent, keep, processes, left);
  Napi::Object r = Napi::Object::New(env);
  r.Set("cgroups", groups);
  r.Set("processes", processes);
  r.Set("left", left);
  return r;
}

Napi::Value LiveJobs(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), (double)job::liveJobs());
}

// closePool(): kill and remove every pooled setup (zygote.h); returns how many there were.
Napi::Value ClosePool(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), (double)zygote::closeAll());
}

Napi::Value PoolSize(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), (double)zygote::count());
}

// pooledSetups(): { groupDirs, made }: the cgroup directories of the pooled setups (made, being
// made, or being discarded), not of the jobs that started in one; and how many setups were begun
// by then, read together (a setup numbered above `made` was begun after the list was read).
Napi::Value PooledSetups(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t made = 0;
  std::set<std::string> dirs = zygote::groupDirs(&made);
  Napi::Array list = Napi::Array::New(env, dirs.size());
  uint32_t i = 0;
  for (const auto& d : dirs) list.Set(i++, d);
  Napi::Object out = Napi::Object::New(env);
  out.Set("groupDirs", list);
  out.Set("made", Napi::Number::New(env, (double)made));
  return out;
}

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  exports.Set("init", Napi::Function::New(env, Init));
  exports.Set("probe", Napi::Function::New(env, Probe));
  exports.Set("launch", Napi::Function::New(env, Launch));
  exports.Set("kill", Napi::Function::New(env, Kill));
  exports.Set("setCpuShares", Napi::Function::New(env, SetCpuShares));
  exports.Set("dropPipe", Napi::Function::New(env, DropPipe));
  exports.Set("stopDrop", Napi::Function::New(env, StopDrop));
  exports.Set("droppedSoFar", Napi::Function::New(env, DroppedSoFar));
  exports.Set("droppedAgoMs", Napi::Function::New(env, DroppedAgoMs));
  exports.Set("stop", Napi::Function::New(env, Stop));
  exports.Set("signal", Napi::Function::New(env, Signal));
  exports.Set("ttyResize", Napi::Function::New(env, TtyResize));
  exports.Set("sweep", Napi::Function::New(env, Sweep));
  exports.Set("live", Napi::Function::New(env, Live));
  exports.Set("liveJobs", Napi::Function::New(env, LiveJobs));
  exports.Set("closePool", Napi::Function::New(env, ClosePool));
  exports.Set("poolSize", Napi::Function::New(env, PoolSize));
  exports.Set("pooledSetups", Napi::Function::New(env, PooledSetups));
  // At the environment's teardown (the process exiting normally): no pooled setup outlives us
  // (they would die by pdeathsig anyway, but their cgroups would stay until the next sweep()).
  napi_add_env_cleanup_hook(env, [](void*) { zygote::closeAll(); }, nullptr);
  return exports;
}

}  // namespace
}  // namespace sbx

static Napi::Object InitAll(Napi::Env env, Napi::Object exports) { return sbx::InitModule(env, exports); }
NODE_API_MODULE(sbx_native, InitAll)
