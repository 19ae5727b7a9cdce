// The launch request, validated once at the edge (spec.cc); everything after trusts these types.
#pragma once
#include <napi.h>
#include <stdint.h>
#include <string>
#include <vector>
#include "error.h"

namespace sbx::spec {

struct Limits {
  uint64_t memoryBytes = 0;
  uint64_t pids = 0;
  double cpus = 0;
  uint64_t timeoutMs = 0;
  uint64_t diskBytes = 0;
  uint64_t cpuTimeMs = 0;  // 0 = none
  uint64_t openFiles = 1024;
};

struct Spec {
  std::string id;
  uint32_t slot = 0;
  std::vector<std::string> lowerDirs;  // bottom layer first, as given
  std::vector<std::string> argv;
  std::vector<std::string> env;
  std::string cwd;
  uint32_t uid = 0, gid = 0;
  std::vector<uint32_t> groups;
  std::string hostname;
  bool stdinPipe = false;  // stdin text given (the JS side writes it); false = /dev/null
  Limits limits;
};

struct Options {
  std::string cgroupParent = "sbx";  // relative to each hierarchy root; never written outside
  std::string stateDir = "/var/lib/sbx";
  bool seccomp = true;
};

// Validate a JS LaunchSpec. On failure fills `err` (kind kInvalidSpec, path = offending field).
bool fromJs(const Napi::Value& v, Spec& out, Error& err);
bool optionsFromJs(const Napi::Value& v, Options& out, Error& err);
bool validCgroupParent(const std::string& p);

}  // namespace sbx::spec
