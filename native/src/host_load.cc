#include "host_load.h"

#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mutex>
#include <string>
#include <vector>

namespace sbx::host_load {
namespace {

struct Times {
  unsigned long long idle = 0, total = 0;
};

// Clock ticks of the CPUs numbered in `cpus` (cpus[n] != 0) summed from a /proc/stat text: all of
// their time, and idle + iowait. False unless every one of those CPUs has its line.
bool parseProcStat(const char* text, const unsigned char* cpus, size_t ncpus, Times& out) {
  out = Times{};
  size_t wanted = 0, seen = 0;
  for (size_t i = 0; i < ncpus; i++) wanted += cpus[i] ? 1 : 0;
  for (const char* line = text; *line;) {
    const char* end = strchr(line, '\n');
    // "cpuN user nice system idle iowait irq softirq steal ..." ("cpu " is the sum; guest times are
    // inside user and nice)
    if (strncmp(line, "cpu", 3) == 0 && line[3] >= '0' && line[3] <= '9') {
      char* p;
      const unsigned long n = strtoul(line + 3, &p, 10);
      if (n < ncpus && cpus[n]) {
        unsigned long long v[8] = {};
        for (auto& x : v) x = strtoull(p, &p, 10);
        for (auto x : v) out.total += x;
        out.idle += v[3] + v[4];
        seen++;
      }
    }
    if (!end) break;
    line = end + 1;
  }
  return wanted > 0 && seen == wanted;
}

long long nowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

// This process's CPUs (its affinity mask) as a byte per CPU number.
bool allowedCpus(std::vector<unsigned char>& out) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return false;
  out.assign(CPU_SETSIZE, 0);
  for (int i = 0; i < CPU_SETSIZE; i++) out[i] = CPU_ISSET(i, &set) ? 1 : 0;
  return true;
}

bool readTimes(Times& out) {
  std::vector<unsigned char> cpus;
  if (!allowedCpus(cpus)) return false;
  const int fd = open("/proc/stat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  std::string text;
  char buf[16384];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) text.append(buf, (size_t)n);
  close(fd);
  return parseProcStat(text.c_str(), cpus.data(), cpus.size(), out);
}

}  // namespace

double idleShare() {
  static std::mutex mu;
  static bool primed = false;
  static Times last;
  static long long lastMs = 0;
  static double share = 1;
  std::lock_guard<std::mutex> lock(mu);
  const long long now = nowMs();
  if (primed && now - lastMs < kWindowMs) return share;
  Times t;
  if (!readTimes(t)) return share;
  // (idle time can step back a little on some kernels: counted as none)
  if (primed && t.total > last.total) share = t.idle >= last.idle ? (double)(t.idle - last.idle) / (double)(t.total - last.total) : 0;
  primed = true;
  last = t;
  lastMs = now;
  return share;
}

}  // namespace sbx::host_load
