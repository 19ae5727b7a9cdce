// Raw system calls for code that runs between clone() and execve().
//
// The setup child shares the Node process's memory (CLONE_VM) while Node keeps running, so it must
// not touch anything Node may use concurrently: no malloc, no locks, no lazy PLT binding, and not
// even `errno` (the child runs on the parent thread's TLS block). These wrappers are inline asm,
// return -errno on failure and never touch errno. They are also fine to use anywhere else.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>

namespace sbx::sys {

static inline long call(long n, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0, long f = 0) {
#if defined(__x86_64__)
  long ret;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
#elif defined(__aarch64__)
  register long x8 __asm__("x8") = n;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  register long x3 __asm__("x3") = d;
  register long x4 __asm__("x4") = e;
  register long x5 __asm__("x5") = f;
  __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory");
  return x0;
#else
#error "sbx native launcher: raw syscalls implemented for x86_64 and aarch64 only"
#endif
}

template <typename A = long, typename B = long, typename C = long, typename D = long, typename E = long,
          typename F = long>
static inline long sc(long n, A a = 0, B b = 0, C c = 0, D d = 0, E e = 0, F f = 0) {
  return call(n, (long)a, (long)b, (long)c, (long)d, (long)e, (long)f);
}

// Async-signal-safe string helpers (no libc).
static inline size_t slen(const char* s) {
  size_t n = 0;
  while (s && s[n]) n++;
  return n;
}
static inline void scopy(char* dst, size_t cap, const char* src) {
  size_t i = 0;
  if (cap == 0) return;
  for (; src && src[i] && i + 1 < cap; i++) dst[i] = src[i];
  dst[i] = 0;
}
static inline void bzero(void* p, size_t n) {
  volatile char* c = static_cast<volatile char*>(p);
  for (size_t i = 0; i < n; i++) c[i] = 0;
}

}  // namespace sbx::sys
