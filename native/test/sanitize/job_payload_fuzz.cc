// sources: input_files.cc output_files.cc
// The bytes sbx-init parses and produces around a job's command, under the sanitizers
// (native/tools/sanitize.sh builds this with ASan + UBSan; sbx-init itself is static musl, which
// they cannot instrument): input_files::writeInInit over seeded, mutated payload memfds (file and
// collect records: lengths, sizes, magics, truncations, NULs), then output_files::collectAndSend
// over what it wrote beside a few hostile entries (a FIFO, a symlink, a directory named like a file,
// a file larger than the budget). The records it sends back are walked as the launcher's parser
// walks them (output-files.ts): each must fit the memfd, their data must fit the budget.
//
// Each case runs in a child process (sbx-init's globals start empty) inside a chroot of an empty
// scratch directory, so mutated paths ("/etc/...", "../..") stay there. Deterministic: fixed seed.
//   job_payload_fuzz [cases]      (as root, or where an unprivileged user namespace may chroot)
#include <fcntl.h>
#include <stddef.h>
#include <ftw.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "input_files.h"
#include "output_files.h"
#include "recv_fds.h"

namespace {

using sbx::input_files::Record;
using sbx::output_files::OutRecord;

uint64_t gRng = 0x5eed5bc0ffee1234ull;

uint64_t next() {  // xorshift64*
  gRng ^= gRng >> 12, gRng ^= gRng << 25, gRng ^= gRng >> 27;
  return gRng * 2685821657736338717ull;
}
uint64_t below(uint64_t n) { return n ? next() % n : 0; }

void put(std::string& out, const void* p, size_t n) { out.append(static_cast<const char*>(p), n); }

void fileRecord(std::string& out, const std::string& path, uint32_t mode, const std::string& data) {
  Record r{sbx::input_files::kMagic, (uint32_t)path.size(), mode, 0, data.size()};
  put(out, &r, sizeof r);
  out += path;
  out += data;
}

void collectRecord(std::string& out, const std::string& pattern, uint64_t budget) {
  Record r{sbx::input_files::kCollectMagic, (uint32_t)pattern.size(), 0, 0, budget};
  put(out, &r, sizeof r);
  out += pattern;
}

std::string randomData(size_t n) {
  std::string s(n, 0);
  for (auto& c : s) c = (char)next();
  return s;
}

// A path of `n` bytes: components of 200 (a name may have 255).
std::string longPath(size_t n) {
  std::string p(n, 'l');
  for (size_t i = 200; i < n; i += 201) p[i] = '/';
  return p;
}

// A well-formed payload, as input_files_pack.cc writes them.
std::string seedPayload() {
  static const std::string kLongest = longPath(sbx::input_files::kMaxPath);
  static const char* const kPaths[] = {"a.txt", "dir/b.txt", "x//y/c.txt", "/abs/d.txt", "deep/1/2/3/4/e", "big.bin", "p.fifo/f", kLongest.c_str()};
  static const char* const kPatterns[] = {"*.txt", "dir/*", "nomatch*", "[a-", "/abs/*", "*", "deep/*/*/*/*/*", "link.txt", "p.fifo", "d.txt"};
  static const uint64_t kBudgets[] = {0, 1, 100, 70000, 1 << 20, UINT64_MAX};
  std::string out;
  for (uint64_t i = 0, n = below(5); i < n; i++)
    fileRecord(out, kPaths[below(sizeof kPaths / sizeof *kPaths)], (uint32_t)below(01000), randomData(below(4) ? below(64) : below(90000)));
  const uint64_t budget = kBudgets[below(sizeof kBudgets / sizeof *kBudgets)];
  for (uint64_t i = 0, n = below(5); i < n; i++) collectRecord(out, kPatterns[below(sizeof kPatterns / sizeof *kPatterns)], budget);
  return out;
}

// Values at the edges of what the parser checks, for a field of the record at `at`: limits, and
// what is left of the payload after its header (and after its path) give or take one.
uint64_t edgeValue(const std::string& p, size_t at) {
  Record r{};
  if (at + sizeof r <= p.size()) memcpy(&r, &p[at], sizeof r);
  const uint64_t left = p.size() - std::min(p.size(), at + sizeof r), afterPath = left - std::min<uint64_t>(left, r.pathLen);
  const uint64_t v[] = {0, 1, 4095, 4096, 0777, 01000, left, left - 1, left + 1, afterPath, afterPath + 1, afterPath - 1,
                        0x7fffffff, 0xffffffff, 0x100000000ull, INT64_MAX, UINT64_MAX, UINT64_MAX - 31,
                        sbx::input_files::kMagic, sbx::input_files::kCollectMagic};
  return v[below(sizeof v / sizeof *v)];
}

// Where each record's header starts, in a payload that is still well-formed.
std::vector<size_t> headers(const std::string& p) {
  std::vector<size_t> at;
  for (size_t off = 0; off + sizeof(Record) <= p.size();) {
    Record r;
    memcpy(&r, &p[off], sizeof r);
    at.push_back(off);
    off += sizeof r + r.pathLen + (r.magic == sbx::input_files::kMagic ? r.size : 0);
  }
  return at;
}

// One field of one record's header (magic, pathLen, mode, size) set to an edge value.
void editField(std::string& p, const std::vector<size_t>& at) {
  if (at.empty()) return;
  const size_t header = at[below(at.size())];
  static const size_t kFields[] = {offsetof(Record, magic), offsetof(Record, pathLen), offsetof(Record, mode), offsetof(Record, size)};
  const size_t field = kFields[below(4)];
  const uint64_t v = edgeValue(p, header);
  if (header + sizeof(Record) <= p.size()) memcpy(&p[header + field], &v, field == offsetof(Record, size) ? 8 : 4);
}

void mutate(std::string& p) {
  const std::vector<size_t> at0 = headers(p);
  for (uint64_t i = 0, n = 1 + below(4); i < n && !p.empty(); i++) {
    const size_t at = below(p.size());
    switch (below(7)) {
      case 0: p[at] = (char)next(); break;
      case 1: p[at] = 0; break;
      case 2: {  // 4 or 8 bytes anywhere
        uint64_t v = edgeValue(p, at);
        memcpy(&p[at], &v, at + 8 <= p.size() ? 8 : std::min<size_t>(4, p.size() - at));
        break;
      }
      case 6: editField(p, at0); break;
      case 3: p.resize(at); break;
      case 4: p.insert(at, p.substr(below(p.size()), below(64))); break;
      case 5: p += p.substr(at); break;
    }
  }
}

// What a job leaves for its patterns besides the input files.
void hostileEntries() {
  mkfifo("p.fifo", 0644);
  symlink("/etc/passwd", "link.txt");
  symlink("loop.txt", "loop.txt");
  mkdir("d.txt", 0755);
  int fd = open("huge.txt", O_WRONLY | O_CREAT, 0644);
  if (fd >= 0) ftruncate(fd, 300000), close(fd);
  fd = open("secret.txt", O_WRONLY | O_CREAT, 0);
  if (fd >= 0) close(fd);
}

int memfdOf(const std::string& p) {
  int fd = (int)syscall(SYS_memfd_create, "payload", MFD_CLOEXEC);
  if (fd < 0 || write(fd, p.data(), p.size()) != (ssize_t)p.size()) _exit(2);
  return fd;
}

bool terminated(const char* s, size_t cap) { return memchr(s, 0, cap) != nullptr; }

// The records as output-files.ts reads them: 1 when one runs past the end or the data exceeds the budget.
int checkRecords(int memfd, uint64_t budget) {
  struct stat st;
  if (fstat(memfd, &st) != 0) return 2;
  std::vector<char> buf((size_t)st.st_size);
  if (pread(memfd, buf.data(), buf.size(), 0) != (ssize_t)buf.size()) return 2;
  uint64_t kept = 0, records = 0;
  for (size_t off = 0; off < buf.size(); records++) {
    OutRecord r;
    if (buf.size() - off < sizeof r) return fprintf(stderr, "record header cut at %zu\n", off), 1;
    memcpy(&r, &buf[off], sizeof r);
    if (r.magic != sbx::output_files::kMagic || r.pathLen > buf.size() - off - sizeof r ||
        r.kept > buf.size() - off - sizeof r - r.pathLen)
      return fprintf(stderr, "bad record at %zu\n", off), 1;
    off += sizeof r + r.pathLen + r.kept;
    kept += r.kept;
  }
  if (kept > budget) return fprintf(stderr, "%llu data bytes over a budget of %llu\n", (unsigned long long)kept, (unsigned long long)budget), 1;
  if (records > sbx::output_files::kMaxFiles + sbx::output_files::kMaxPatterns) return fprintf(stderr, "%llu records\n", (unsigned long long)records), 1;
  return 0;
}

// The budget of a payload writeInInit took whole: its last collect record's.
uint64_t budgetOf(const std::string& p) {
  uint64_t budget = 0;
  for (size_t off = 0; off + sizeof(Record) <= p.size();) {
    Record r;
    memcpy(&r, &p[off], sizeof r);
    off += sizeof r + r.pathLen;
    if (r.magic == sbx::input_files::kCollectMagic) budget = r.size;
    else if (r.magic == sbx::input_files::kMagic) off += r.size;
    else break;
    if (off > p.size()) break;
  }
  return budget;
}

// How a case ended (its child's exit status): a finding is 1 (or the sanitizers' own 86/87), 2 a
// failure of the harness itself.
enum Outcome { kRefused = 10, kWritten = 11, kCollected = 12 };

int runCase(const std::string& payload, const char* dir) {
  if (mkdir(dir, 0755) != 0 || chdir(dir) != 0) return 2;
  hostileEntries();
  sbx::Error err;
  bool ok = sbx::input_files::writeInInit(memfdOf(payload), err);
  if (!ok && !(terminated(err.stage, sizeof err.stage) && terminated(err.syscall, sizeof err.syscall) && terminated(err.path, sizeof err.path)))
    return fprintf(stderr, "unterminated error strings\n"), 1;
  if (!ok) return kRefused;  // sbx-init reports 'F' and collects nothing
  if (!sbx::output_files::wanted()) return kWritten;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return 2;
  sbx::output_files::collectAndSend(sv[0]);
  char msg[512];
  int memfd = -1;
  ssize_t n = sbx::recvWithFds(sv[1], msg, sizeof msg, [&](int f) { memfd = f; });
  if (n <= 0 || memfd < 0) return kWritten;  // nothing sent (best effort)
  int bad = checkRecords(memfd, budgetOf(payload));
  return bad ? bad : kCollected;
}

// Relative to the directory nftw is in (FTW_CHDIR): full names of entries deeper than PATH_MAX are
// refused (ENAMETOOLONG). What a case leaves anyway goes with the scratch dir at the end (main).
int removeEntry(const char* path, const struct stat*, int, struct FTW* at) { return remove(path + at->base); }

bool enterRoot(const char* dir) {
  if (chroot(dir) != 0 && !(unshare(CLONE_NEWUSER | CLONE_NEWNS) == 0 && chroot(dir) == 0)) return perror("chroot"), false;
  return chdir("/") == 0;
}

int runCases(int cases) {
  int failures = 0, outcomes[3] = {};
  for (int i = 0; i < cases; i++) {
    std::string payload = seedPayload();
    if (i % 8) mutate(payload);  // every eighth case well-formed
    char dir[32];
    snprintf(dir, sizeof dir, "/case-%d", i);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) _exit(runCase(payload, dir));
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) >= kRefused && WEXITSTATUS(status) <= kCollected) {
      outcomes[WEXITSTATUS(status) - kRefused]++;
    } else {
      fprintf(stderr, "job_payload_fuzz: case %d failed (status %#x), payload %zu bytes\n", i, status, payload.size());
      failures++;
    }
    nftw(dir, removeEntry, 16, FTW_DEPTH | FTW_PHYS | FTW_CHDIR);
  }
  fprintf(stderr, "job_payload_fuzz: %d cases (%d refused, %d written, %d written and collected), %d failed\n", cases,
          outcomes[0], outcomes[1], outcomes[2], failures);
  return failures ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  const int cases = argc > 1 ? atoi(argv[1]) : 1500;
  char scratch[] = "/tmp/sbx-payload-fuzz-XXXXXX";
  if (!mkdtemp(scratch)) return perror("mkdtemp"), 2;
  pid_t pid = fork();
  if (pid == 0) _exit(enterRoot(scratch) ? runCases(cases) : 2);
  int status = 0;
  waitpid(pid, &status, 0);
  // GNU rm walks any depth (openat); nftw, even with FTW_CHDIR, gave up on the cases whose paths the
  // fuzz made deeper than PATH_MAX, and every run left its scratch dir in /tmp.
  pid_t rm = fork();
  if (rm == 0) execlp("rm", "rm", "-rf", "--one-file-system", "--", scratch, (char*)nullptr), _exit(127);
  int rmStatus = 1;
  if (rm > 0) waitpid(rm, &rmStatus, 0);
  if (rm < 0 || !WIFEXITED(rmStatus) || WEXITSTATUS(rmStatus) != 0) fprintf(stderr, "job_payload_fuzz: could not remove %s\n", scratch);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
