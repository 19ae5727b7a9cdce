#include "seccomp.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>

#include <algorithm>

namespace sbx::seccomp {
namespace {

#if defined(__x86_64__)
constexpr uint32_t kArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr uint32_t kArch = AUDIT_ARCH_AARCH64;
#endif

const int kAllowed[] = {
#include "seccomp_allow.inc"
};

// Unified syscall numbers (same on every arch since 5.1) that older kernel headers lack.
struct Late { int nr; };
const Late kLateAllowed[] = {{451} /*cachestat*/, {452} /*fchmodat2*/, {453} /*map_shadow_stack*/,
                             {454} /*futex_wake*/, {455} /*futex_wait*/, {456} /*futex_requeue*/,
                             {457} /*statmount*/, {458} /*listmount*/, {462} /*mseal*/,
                             {463} /*setxattrat*/, {464} /*getxattrat*/, {465} /*listxattrat*/,
                             {466} /*removexattrat*/};
constexpr uint32_t kMaxKnownNr = 466;  // newer syscalls get ENOSYS so libc can fall back

constexpr uint32_t kCloneNsMask = 0x7E020000;  // CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
const uint32_t kPersonalities[] = {0, 8, 0x20000, 0x20008, 0xffffffff};
// Docker's socket families; everything else (AF_ALG 38, AF_VSOCK 40, ...) is refused.
const uint32_t kSocketFamilies[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 21, 22, 24,
                                    26, 27, 28, 29, 30, 31, 32, 33, 35, 36, 39, 41, 42, 43, 44, 45};
constexpr uint32_t kDeniedIoctls[] = {0x5412 /*TIOCSTI*/, 0x541C /*TIOCLINUX*/};

constexpr uint32_t kArgLo(int i) { return (uint32_t)(offsetof(struct seccomp_data, args) + 8 * i); }

struct Prog {
  std::vector<struct sock_filter> v;
  void stmt(uint16_t code, uint32_t k) { v.push_back(BPF_STMT(code, k)); }
  void jump(uint16_t code, uint32_t k, uint8_t jt, uint8_t jf) { v.push_back(BPF_JUMP(code, k, jt, jf)); }
  void ret(uint32_t action) { stmt(BPF_RET | BPF_K, action); }
  void loadNr() { stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)); }
  // if (A == nr) { <body> } — body emitted by the caller, ends in a return.
  void ifNr(uint32_t nr, size_t bodyLen) { jump(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, (uint8_t)bodyLen); }
  // return allow if the low 32 bits of arg[i] are one of `vals`, else errno.
  void allowArgIn(int i, const uint32_t* vals, size_t n, uint32_t otherwise) {
    stmt(BPF_LD | BPF_W | BPF_ABS, kArgLo(i));
    for (size_t j = 0; j < n; j++) jump(BPF_JMP | BPF_JEQ | BPF_K, vals[j], (uint8_t)(n - j), 0);
    ret(otherwise);
    ret(SECCOMP_RET_ALLOW);
  }
};

constexpr uint32_t errnoRet(int e) { return SECCOMP_RET_ERRNO | (uint32_t)e; }

// F_SETLK, F_SETLKW, F_OFD_SETLK, F_OFD_SETLKW: taking (or releasing) a record lock.
constexpr uint32_t kLockFcntls[] = {6, 7, 37, 38};

void fileLocks(Prog& p) {
  p.ifNr(__NR_flock, 1);
  p.ret(errnoRet(EPERM));
  const size_t n = sizeof kLockFcntls / sizeof *kLockFcntls;
  p.ifNr(__NR_fcntl, n + 3);
  p.stmt(BPF_LD | BPF_W | BPF_ABS, kArgLo(1));
  for (size_t j = 0; j < n; j++) p.jump(BPF_JMP | BPF_JEQ | BPF_K, kLockFcntls[j], (uint8_t)(n - j), 0);
  p.ret(SECCOMP_RET_ALLOW);
  p.ret(errnoRet(EPERM));
}

void special(Prog& p) {
  // clone: no namespace flags. Body: ld arg0, jset mask, ret allow, ret eperm.
  p.ifNr(__NR_clone, 4);
  p.stmt(BPF_LD | BPF_W | BPF_ABS, kArgLo(0));
  p.jump(BPF_JMP | BPF_JSET | BPF_K, kCloneNsMask, 1, 0);
  p.ret(SECCOMP_RET_ALLOW);
  p.ret(errnoRet(EPERM));
  p.loadNr();  // reload nr after the (skipped) body for the next test

  p.ifNr(__NR_clone3, 1);
  p.ret(errnoRet(ENOSYS));

  const size_t nf = sizeof kSocketFamilies / sizeof *kSocketFamilies;
  p.ifNr(__NR_socket, nf + 3);
  p.allowArgIn(0, kSocketFamilies, nf, errnoRet(EPERM));

  const size_t np = sizeof kPersonalities / sizeof *kPersonalities;
  p.ifNr(__NR_personality, np + 3);
  p.allowArgIn(0, kPersonalities, np, errnoRet(EPERM));

  // ioctl: compare cmd on its low 32 bits (TIOCSTI with high bits set, CVE-2019-10063).
  const size_t ni = sizeof kDeniedIoctls / sizeof *kDeniedIoctls;
  p.ifNr(__NR_ioctl, ni + 3);
  p.stmt(BPF_LD | BPF_W | BPF_ABS, kArgLo(1));
  for (size_t j = 0; j < ni; j++) p.jump(BPF_JMP | BPF_JEQ | BPF_K, kDeniedIoctls[j], (uint8_t)(ni - j), 0);
  p.ret(SECCOMP_RET_ALLOW);
  p.ret(errnoRet(EPERM));
}

// Sorted, merged ranges of allowed numbers.
std::vector<std::pair<uint32_t, uint32_t>> allowedRanges() {
  std::vector<uint32_t> nrs;
  for (int nr : kAllowed) nrs.push_back((uint32_t)nr);
  for (const Late& l : kLateAllowed) nrs.push_back((uint32_t)l.nr);
  std::sort(nrs.begin(), nrs.end());
  nrs.erase(std::unique(nrs.begin(), nrs.end()), nrs.end());
  std::vector<std::pair<uint32_t, uint32_t>> r;
  for (uint32_t n : nrs) {
    if (!r.empty() && r.back().second + 1 == n) r.back().second = n;
    else r.push_back({n, n});
  }
  return r;
}

// Binary search over the ranges: O(log n) instructions per syscall, and cheap for the kernel's
// per-syscall action cache, which emulates the filter for every syscall number at install time
// (a linear list of ~370 comparisons cost ~1 ms per job there).
void emitTree(Prog& p, const std::vector<std::pair<uint32_t, uint32_t>>& r, size_t lo, size_t hi) {
  if (hi - lo == 1) {
    p.jump(BPF_JMP | BPF_JGE | BPF_K, r[lo].first, 0, 2);
    p.jump(BPF_JMP | BPF_JGT | BPF_K, r[lo].second, 1, 0);
    p.ret(SECCOMP_RET_ALLOW);
    p.ret(errnoRet(EPERM));
    return;
  }
  size_t mid = (lo + hi) / 2;
  p.jump(BPF_JMP | BPF_JGE | BPF_K, r[mid].first, 0, 1);
  size_t ja = p.v.size();
  p.stmt(BPF_JMP | BPF_JA, 0);  // to the right half, patched below
  emitTree(p, r, lo, mid);
  p.v[ja].k = (uint32_t)(p.v.size() - ja - 1);
  emitTree(p, r, mid, hi);
}


std::vector<struct sock_filter> buildProgram(bool denyFileLocks) {
  Prog p;
  // Wrong architecture (i386 via int 0x80 on x86_64): kill.
  p.stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
  p.jump(BPF_JMP | BPF_JEQ | BPF_K, kArch, 1, 0);
  p.ret(SECCOMP_RET_KILL_PROCESS);
  p.loadNr();
#if defined(__x86_64__)
  p.jump(BPF_JMP | BPF_JGE | BPF_K, 0x40000000 /*__X32_SYSCALL_BIT*/, 0, 1);
  p.ret(errnoRet(ENOSYS));
#endif
  p.jump(BPF_JMP | BPF_JGT | BPF_K, kMaxKnownNr, 0, 1);
  p.ret(errnoRet(ENOSYS));
  special(p);
  if (denyFileLocks) fileLocks(p);
  p.loadNr();
  auto ranges = allowedRanges();
  emitTree(p, ranges, 0, ranges.size());
  return p.v;
}

}  // namespace

std::vector<struct sock_filter> build(bool denyFileLocks) {
  static const std::vector<struct sock_filter> program = buildProgram(false);  // constant: built once
  static const std::vector<struct sock_filter> noLocks = buildProgram(true);
  return denyFileLocks ? noLocks : program;
}

}  // namespace sbx::seccomp
