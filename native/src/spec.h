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

// One of the job's input files (input_files.h): written by sbx-init before the command starts.
struct InputFile {
  std::string path;  // absolute, or relative to cwd; no NUL
  uint32_t mode = 0644;
  std::string data;
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
  bool tty = false;        // the command's fds 0-2 are a pty of the job's devpts (tty.h)
  uint32_t ttyRows = 0, ttyCols = 0;
  std::vector<InputFile> files;
  // Patterns of files collected after the command (output_files.h), and their byte budget.
  std::vector<std::string> outputFiles;
  uint64_t outputFilesBytes = 0;
  // > 0: a TCP socket listening on 127.0.0.1:listenPort in the job's network namespace, made before
  // the command starts and handed to the caller (the worker's egress proxy serves it).
  uint16_t listenPort = 0;
  Limits limits;
};

struct Options {
  std::string cgroupParent = "sbx";  // relative to each hierarchy root; never written outside
  std::string stateDir = "/var/lib/sbx";
  bool seccomp = true;
  // Tests on hybrid hosts: force the cgroup v2 code path on this cgroup2 mount (controllers that
  // are bound to v1 there are skipped, so their limits are not enforced). Empty = detect.
  std::string cgroupV2Root;
  bool userns = true;        // P9: run the job in the slot's user namespace
  uint32_t uidBase = 100000; // host uid/gid of container id 0 for slot 0; slot s: + s * 65536
  bool devicesCgroup = true;  // P17 device allow-list in the job's cgroup; false only for test controls
  bool denyFileLocks = false; // P30 fileLocks: 'deny' -> flock/fcntl record locks fail with EPERM
  bool coreScheduling = true; // P30: the job gets its own core-scheduling cookie (where the kernel has it)
  uint64_t parentMemoryBytes = 0, parentPids = 0;  // P29 parentLimits (0 = not set)
  bool trace = false;  // diagnostics: the exit payload carries the launch's phase times (trace.h)
  bool pool = true;    // pooled setups made ahead per slot (zygote.h), where usable
  // Pooled setups are made only while this process's CPUs were at least this share idle over the
  // last window (host_load.h); 0: always. The worker sets SBX_POOL_MIN_IDLE_PERCENT / 100.
  double poolMinIdle = 0;
};

// Validate a JS LaunchSpec. On failure fills `err` (kind kInvalidSpec, path = offending field).
bool fromJs(const Napi::Value& v, Spec& out, Error& err);
bool optionsFromJs(const Napi::Value& v, Options& out, Error& err);
bool validCgroupParent(const std::string& p);

}  // namespace sbx::spec
