#include "spec.h"

#include "input_files.h"
#include "output_files.h"

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <cmath>
#include <vector>

namespace sbx::spec {
namespace {

constexpr uint32_t kMaxInputFiles = 10000;
// The most bytes of input files, and the largest budget for output files, a spec may give.
constexpr size_t kMaxFileBytes = 64u << 20;

bool bad(Error& err, const std::string& field, const char* why) {
  std::string what = field + ": " + why;
  return fail(err, "spec", "", what.c_str(), 22 /* EINVAL */, kInvalidSpec);
}

bool getString(const Napi::Object& o, const char* key, std::string& out, Error& err, size_t maxLen,
               bool allowEmpty = false) {
  Napi::Value v = o.Get(key);
  if (!v.IsString()) return bad(err, key, "must be a string");
  out = v.As<Napi::String>().Utf8Value();
  if (out.size() > maxLen) return bad(err, key, "too long");
  if (!allowEmpty && out.empty()) return bad(err, key, "must not be empty");
  if (out.find('\0') != std::string::npos) return bad(err, key, "must not contain NUL");
  return true;
}

bool getNumber(const Napi::Object& o, const char* key, double& out, Error& err, double min, double max,
               bool integer) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) return bad(err, key, "must be a number");
  out = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(out) || out < min || out > max) return bad(err, key, "out of range");
  if (integer && std::floor(out) != out) return bad(err, key, "must be an integer");
  return true;
}

bool getStringArray(const Napi::Object& o, const char* key, std::vector<std::string>& out, Error& err,
                    size_t maxItems, size_t minItems) {
  Napi::Value v = o.Get(key);
  if (!v.IsArray()) return bad(err, key, "must be an array of strings");
  Napi::Array a = v.As<Napi::Array>();
  if (a.Length() > maxItems || a.Length() < minItems) return bad(err, key, "wrong number of items");
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value item = a.Get(i);
    if (!item.IsString()) return bad(err, key, "items must be strings");
    std::string s = item.As<Napi::String>().Utf8Value();
    if (s.find('\0') != std::string::npos) return bad(err, key, "items must not contain NUL");
    out.push_back(std::move(s));
  }
  return true;
}

bool validId(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s)
    if (!(isalnum((unsigned char)c) || c == '_' || c == '-')) return false;
  return true;
}

bool validHostname(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s)
    if (!(isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_')) return false;
  return true;
}

// Overlay option syntax uses ':' ',' and '\\'; refuse them rather than escaping.
bool validLayerDir(const std::string& s) {
  if (s.empty() || s[0] != '/' || s.size() > 1024) return false;
  for (char c : s)
    if (c == ':' || c == ',' || c == '\\' || c == '\n') return false;
  struct stat st;
  return stat(s.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Whether `cwd` is /proc or below it once its "." and ".." are resolved (as core/src/job-spec.ts
// isInsideProc): a component named proc elsewhere (/usr/src/proc) is not.
bool hasProcComponent(const std::string& cwd) {
  std::vector<std::string> parts;
  size_t at = 0;
  while (at <= cwd.size()) {
    size_t end = cwd.find('/', at);
    if (end == std::string::npos) end = cwd.size();
    std::string part = cwd.substr(at, end - at);
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    at = end + 1;
  }
  return !parts.empty() && parts[0] == "proc";
}

// The bounds below MUST AGREE WITH core/src/launch-bounds.ts: the API and config accept exactly
// these ranges, so a job the API accepts is never refused here (core/src/launch-bounds.test.ts).
bool readLimits(const Napi::Object& spec, Limits& l, Error& err) {
  Napi::Value v = spec.Get("limits");
  if (!v.IsObject()) return bad(err, "limits", "must be an object");
  Napi::Object o = v.As<Napi::Object>();
  double d;
  const double kMax = 9007199254740991.0;
  RETURN_ON_FAILURE(getNumber(o, "memoryBytes", d, err, 4 << 20, kMax, true));
  l.memoryBytes = (uint64_t)d;
  // pids.max = 0 would forbid even the command itself: meaningless, so at least 2 (init + command).
  RETURN_ON_FAILURE(getNumber(o, "pids", d, err, 2, 4194304, true));
  l.pids = (uint64_t)d;
  RETURN_ON_FAILURE(getNumber(o, "cpus", d, err, 0.01, 1024, false));
  l.cpus = d;
  RETURN_ON_FAILURE(getNumber(o, "timeoutMs", d, err, 1, 2147483647.0 /* setTimeout's limit */, true));
  l.timeoutMs = (uint64_t)d;
  RETURN_ON_FAILURE(getNumber(o, "diskBytes", d, err, 1 << 20, kMax, true));
  l.diskBytes = (uint64_t)d;
  if (!o.Get("cpuTimeMs").IsUndefined()) {
    RETURN_ON_FAILURE(getNumber(o, "cpuTimeMs", d, err, 1, kMax, true));
    l.cpuTimeMs = (uint64_t)d;
  }
  if (!o.Get("openFiles").IsUndefined()) {
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    RETURN_ON_FAILURE(getNumber(o, "openFiles", d, err, 8, (double)rl.rlim_max, true));
    l.openFiles = (uint64_t)d;
  }
  return true;
}

bool readIdentity(const Napi::Object& o, Spec& s, Error& err) {
  double d;
  RETURN_ON_FAILURE(getNumber(o, "uid", d, err, 0, 4294967294.0, true));
  s.uid = (uint32_t)d;
  RETURN_ON_FAILURE(getNumber(o, "gid", d, err, 0, 4294967294.0, true));
  s.gid = (uint32_t)d;
  Napi::Value g = o.Get("groups");
  if (g.IsUndefined() || g.IsNull()) return true;
  if (!g.IsArray() || g.As<Napi::Array>().Length() > 64) return bad(err, "groups", "must be an array of at most 64 gids");
  Napi::Array a = g.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value item = a.Get(i);
    if (!item.IsNumber()) return bad(err, "groups", "items must be numbers");
    double x = item.As<Napi::Number>().DoubleValue();
    if (!(x >= 0 && x <= 4294967294.0 && std::floor(x) == x)) return bad(err, "groups", "item out of range");
    s.groups.push_back((uint32_t)x);
  }
  return true;
}

}  // namespace

bool validCgroupParent(const std::string& p) {
  if (p.empty() || p.size() > 200 || p[0] == '/' || p.back() == '/') return false;
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find('/', start);
    if (end == std::string::npos) end = p.size();
    std::string seg = p.substr(start, end - start);
    if (seg.empty() || seg == "." || seg == "..") return false;
    for (char c : seg)
      if (!(isalnum((unsigned char)c) || c == '_' || c == '-' || c == '.')) return false;
    start = end + 1;
  }
  return true;
}

// tty: null/undefined (no terminal) or {rows, cols} (each 0..65535; 0 leaves the size unset).
bool readTty(const Napi::Object& o, Spec& s, Error& err) {
  Napi::Value t = o.Get("tty");
  if (t.IsNull() || t.IsUndefined()) return true;
  if (!t.IsObject()) return bad(err, "tty", "must be {rows, cols} or null");
  Napi::Object w = t.As<Napi::Object>();
  double rows, cols;
  RETURN_ON_FAILURE(getNumber(w, "rows", rows, err, 0, 65535, true));
  RETURN_ON_FAILURE(getNumber(w, "cols", cols, err, 0, 65535, true));
  s.tty = true;
  s.ttyRows = (uint32_t)rows;
  s.ttyCols = (uint32_t)cols;
  return true;
}

// files: null/undefined or [{path, mode, data: Uint8Array}] (input_files.h), at most 64 MiB in all.
bool readFiles(const Napi::Object& o, Spec& s, Error& err) {
  Napi::Value v = o.Get("files");
  if (v.IsNull() || v.IsUndefined()) return true;
  if (!v.IsArray()) return bad(err, "files", "must be an array of {path, mode, data}");
  Napi::Array a = v.As<Napi::Array>();
  if (a.Length() > kMaxInputFiles) return bad(err, "files", "too many files");
  size_t total = 0;
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value item = a.Get(i);
    if (!item.IsObject()) return bad(err, "files", "items must be {path, mode, data}");
    Napi::Object f = item.As<Napi::Object>();
    InputFile file;
    RETURN_ON_FAILURE(getString(f, "path", file.path, err, input_files::kMaxPath));
    if (file.path.back() == '/') return bad(err, "files", "a path must name a file, not end in /");
    double mode;
    RETURN_ON_FAILURE(getNumber(f, "mode", mode, err, 0, input_files::kMaxMode, true));
    file.mode = (uint32_t)mode;
    Napi::Value data = f.Get("data");
    if (!data.IsTypedArray() || data.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      return bad(err, "files", "data must be a Uint8Array");
    Napi::Uint8Array bytes = data.As<Napi::Uint8Array>();
    total += bytes.ByteLength();
    if (total > kMaxFileBytes) return bad(err, "files", "more than 64 MiB in all");
    file.data.assign(reinterpret_cast<const char*>(bytes.Data()), bytes.ByteLength());
    s.files.push_back(std::move(file));
  }
  return true;
}

// outputFiles: null/undefined or {patterns: string[] (at most 32), maxBytes} (output_files.h).
bool readOutputFiles(const Napi::Object& o, Spec& s, Error& err) {
  Napi::Value v = o.Get("outputFiles");
  if (v.IsNull() || v.IsUndefined()) return true;
  if (!v.IsObject()) return bad(err, "outputFiles", "must be {patterns, maxBytes}");
  Napi::Object w = v.As<Napi::Object>();
  RETURN_ON_FAILURE(getStringArray(w, "patterns", s.outputFiles, err, output_files::kMaxPatterns, 1));
  for (const auto& p : s.outputFiles)
    if (p.empty() || p.size() > input_files::kMaxPath) return bad(err, "outputFiles", "each pattern must be 1-4095 bytes");
  double max;
  RETURN_ON_FAILURE(getNumber(w, "maxBytes", max, err, 0, (double)kMaxFileBytes, true));
  s.outputFilesBytes = (uint64_t)max;
  return true;
}

bool fromJs(const Napi::Value& v, Spec& s, Error& err) {
  if (!v.IsObject()) return bad(err, "spec", "must be an object");
  Napi::Object o = v.As<Napi::Object>();
  RETURN_ON_FAILURE(getString(o, "id", s.id, err, 64));
  if (!validId(s.id)) return bad(err, "id", "must match [A-Za-z0-9_-]{1,64}");
  double d;
  RETURN_ON_FAILURE(getNumber(o, "slot", d, err, 0, 4095, true));
  s.slot = (uint32_t)d;
  RETURN_ON_FAILURE(getStringArray(o, "lowerDirs", s.lowerDirs, err, 128, 1));
  for (const auto& l : s.lowerDirs)
    if (!validLayerDir(l)) return bad(err, "lowerDirs", "each must be an existing absolute directory without ':' ',' '\\'");
  RETURN_ON_FAILURE(getStringArray(o, "argv", s.argv, err, 65536, 1));
  if (s.argv[0].empty()) return bad(err, "argv", "argv[0] must not be empty");
  RETURN_ON_FAILURE(getStringArray(o, "env", s.env, err, 65536, 0));
  for (const auto& e : s.env)
    if (e.find('=') == std::string::npos || e[0] == '=') return bad(err, "env", "items must be K=V");
  RETURN_ON_FAILURE(getString(o, "cwd", s.cwd, err, 4095));
  if (s.cwd[0] != '/') return bad(err, "cwd", "must be absolute");
  if (hasProcComponent(s.cwd)) return bad(err, "cwd", "must not be inside /proc");
  RETURN_ON_FAILURE(readIdentity(o, s, err));
  RETURN_ON_FAILURE(getString(o, "hostname", s.hostname, err, 64));
  if (!validHostname(s.hostname)) return bad(err, "hostname", "must match [A-Za-z0-9._-]{1,64}");
  Napi::Value in = o.Get("stdin");
  if (!(in.IsNull() || in.IsUndefined() || in.IsString())) return bad(err, "stdin", "must be a string or null");
  s.stdinPipe = in.IsString();
  RETURN_ON_FAILURE(readTty(o, s, err));
  RETURN_ON_FAILURE(readFiles(o, s, err));
  RETURN_ON_FAILURE(readOutputFiles(o, s, err));
  if (!o.Get("listenPort").IsUndefined() && !o.Get("listenPort").IsNull()) {
    RETURN_ON_FAILURE(getNumber(o, "listenPort", d, err, 1, 65535, true));
    s.listenPort = (uint16_t)d;
  }
  return readLimits(o, s.limits, err);
}

bool optionsFromJs(const Napi::Value& v, Options& out, Error& err) {
  if (v.IsUndefined() || v.IsNull()) return true;
  if (!v.IsObject()) return bad(err, "opts", "must be an object");
  Napi::Object o = v.As<Napi::Object>();
  if (!o.Get("cgroupParent").IsUndefined()) {
    RETURN_ON_FAILURE(getString(o, "cgroupParent", out.cgroupParent, err, 200));
    if (!validCgroupParent(out.cgroupParent)) return bad(err, "cgroupParent", "must be a relative path of [A-Za-z0-9._-] segments");
  }
  if (!o.Get("stateDir").IsUndefined()) {
    RETURN_ON_FAILURE(getString(o, "stateDir", out.stateDir, err, 200));
    if (out.stateDir[0] != '/' || out.stateDir.find_first_of(":,\\\n") != std::string::npos)
      return bad(err, "stateDir", "must be an absolute path without ':' ',' '\\'");
  }
  if (!o.Get("cgroupV2Root").IsUndefined()) {
    RETURN_ON_FAILURE(getString(o, "cgroupV2Root", out.cgroupV2Root, err, 200));
    struct statfs fs;
    if (out.cgroupV2Root[0] != '/' || statfs(out.cgroupV2Root.c_str(), &fs) != 0 || fs.f_type != 0x63677270)
      return bad(err, "cgroupV2Root", "must be a cgroup2 mount point");
  }
  Napi::Value un = o.Get("userns");
  if (un.IsBoolean()) out.userns = un.As<Napi::Boolean>().Value();
  if (!o.Get("uidBase").IsUndefined()) {
    double d;
    RETURN_ON_FAILURE(getNumber(o, "uidBase", d, err, 1, 4294967295.0 - 65536, true));
    out.uidBase = (uint32_t)d;
  }
  Napi::Value sc = o.Get("seccomp");
  if (sc.IsBoolean()) out.seccomp = sc.As<Napi::Boolean>().Value();
  Napi::Value po = o.Get("pool");
  if (!po.IsUndefined()) {
    if (!po.IsBoolean()) return bad(err, "pool", "must be a boolean");
    out.pool = po.As<Napi::Boolean>().Value();
  }
  if (!o.Get("poolMinIdle").IsUndefined()) RETURN_ON_FAILURE(getNumber(o, "poolMinIdle", out.poolMinIdle, err, 0, 1, false));
  Napi::Value tr = o.Get("trace");
  if (tr.IsBoolean()) out.trace = tr.As<Napi::Boolean>().Value();
  Napi::Value dc = o.Get("devicesCgroup");
  if (dc.IsBoolean()) out.devicesCgroup = dc.As<Napi::Boolean>().Value();
  Napi::Value fl = o.Get("fileLocks");
  if (!fl.IsUndefined()) {
    std::string mode = fl.IsString() ? fl.As<Napi::String>().Utf8Value() : "";
    if (mode != "allow" && mode != "deny") return bad(err, "fileLocks", "must be 'allow' or 'deny'");
    out.denyFileLocks = mode == "deny";
  }
  Napi::Value cs = o.Get("coreScheduling");
  if (!cs.IsUndefined()) {
    if (!cs.IsBoolean()) return bad(err, "coreScheduling", "must be a boolean");
    out.coreScheduling = cs.As<Napi::Boolean>().Value();
  }
  Napi::Value pl = o.Get("parentLimits");
  if (!pl.IsUndefined() && !pl.IsNull()) {
    if (!pl.IsObject()) return bad(err, "parentLimits", "must be an object");
    Napi::Object p = pl.As<Napi::Object>();
    double d;
    if (!p.Get("memoryBytes").IsUndefined()) {
      RETURN_ON_FAILURE(getNumber(p, "memoryBytes", d, err, 4 << 20, 9007199254740991.0, true));
      out.parentMemoryBytes = (uint64_t)d;
    }
    if (!p.Get("pids").IsUndefined()) {
      RETURN_ON_FAILURE(getNumber(p, "pids", d, err, 2, 4194304, true));
      out.parentPids = (uint64_t)d;
    }
  }
  return true;
}

}  // namespace sbx::spec
