// Messages on the SOCK_SEQPACKET socket between the launcher (Node), the setup child and sbx-init.
//
//   launcher -> setup child : "G"                      (cgroups joined, go on)
//   launcher -> sbx-init    : InitConfig + payload     (one packet, read by sbx-init from fd 3)
//   launcher -> sbx-init    : "K"                      (jobs with output files, once 'X' came: a limit
//                                                       ended the job; kill the rest of it, collect,
//                                                       report 'O' and 'S')
//   child/init -> launcher  : Msg packets:
//       'F'  setup failed (Error filled)               -> launch() rejects
//       'E'  execve of the command failed (value=errno) -> launch() rejects (command_not_found)
//       'N'  (setup child) carries the job's mount namespace fd (SCM_RIGHTS): the launcher holds
//            it so the namespace's teardown happens after the job is reported, off the JS thread
//       'T'  (sbx-init, tty jobs) carries the pseudo-terminal's master (SCM_RIGHTS), before 'X'
//       'R'  (pooled sbx-init, zygote.h) the setup (mounts up to pivot_root) is done, waiting for the job
//       'X'  the command is running (value = its pid inside the job's pid namespace)
//       'O'  (sbx-init, jobs with output files) carries the memfd of the collected files (SCM_RIGHTS,
//            output_files.h), just before 'S'
//       'S'  the command ended (value = wait status); sbx-init exits right after
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "error.h"

namespace sbx::proto {

constexpr int kInitSyncFd = 3;    // sbx-init finds the socket here
constexpr int kInitUsernsFd = 4;  // and, with kUserns, the user namespace to join
constexpr int kInitFilesFd = 5;   // and, with kFiles, the job's files payload: input files, output patterns (input_files.h)
constexpr uint32_t kMagic = 0x53425831;  // "SBX1"

struct Msg {
  char tag = 0;
  int32_t value = 0;
  Error error;
  uint64_t t[8] = {};  // sbx-init's phase times (trace.h): 'X' initStart..initExecOk + t[6] initJobMounted + t[7] initCmdExec, 'S' t[0] = reaped
};

enum InitFlags : uint32_t {
  kSeccomp = 1u << 0,    // install the filter that follows
  kDropCaps = 1u << 1,   // clear every capability set (always set by the launcher)
  kUserns = 1u << 2,     // setns(kInitUsernsFd, CLONE_NEWUSER) before dropping privileges
  kCoreSched = 1u << 3,  // P30: PR_SCHED_CORE_CREATE for the job (skipped where the kernel lacks it)
  kTty = 1u << 4,        // the command gets a pseudo-terminal of the job's devpts (tty.h)
  kFiles = 1u << 5,      // direct launches only: read the files payload on kInitFilesFd (input_files.h)
};

// Fixed header; followed by groups[ngroups] (uint32), filter[nfilter] (struct sock_filter), cwd bytes.
struct InitConfig {
  uint32_t magic;
  uint32_t flags;
  uint32_t uid, gid;
  uint32_t ngroups;
  uint32_t nfilter;
  uint32_t cwdLen;
  int32_t oomScoreAdj;
  uint64_t nofile;      // RLIMIT_NOFILE soft = hard
  uint64_t cpuSeconds;  // RLIMIT_CPU (0 = unlimited)
  uint64_t fsize;       // RLIMIT_FSIZE in bytes (0 = unlimited)
  uint64_t nproc;       // RLIMIT_NPROC (0 = not set)
  uint64_t keepCaps;    // bitmask of capabilities to keep (documented set; 0 by default)
  uint32_t ttyRows, ttyCols;  // kTty: initial window size (0 = leave the kernel's 0x0)
};

constexpr size_t kMaxConfigBytes = 64 * 1024;

// One packet for sendmsg carrying `len` bytes of `payload` (a Msg) and the descriptor `fd`
// (SCM_RIGHTS): the 'N' and 'T' messages. Built without any libc call (byte loops, no memset), as
// the setup child, which shares Node's memory and may not call libc, sends one too.
struct FdPacket {
  struct iovec iov;
  alignas(struct cmsghdr) char cbuf[CMSG_SPACE(sizeof(int))];
  struct msghdr mh;
};

inline void packFd(FdPacket& p, void* payload, size_t len, int fd) {
  volatile char* z = reinterpret_cast<volatile char*>(&p);
  for (size_t i = 0; i < sizeof p; i++) z[i] = 0;
  p.iov.iov_base = payload;
  p.iov.iov_len = len;
  p.mh.msg_iov = &p.iov;
  p.mh.msg_iovlen = 1;
  p.mh.msg_control = p.cbuf;
  p.mh.msg_controllen = sizeof p.cbuf;
  struct cmsghdr* c = CMSG_FIRSTHDR(&p.mh);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  const char* src = reinterpret_cast<const char*>(&fd);
  for (size_t i = 0; i < sizeof fd; i++) CMSG_DATA(c)[i] = src[i];
}

}  // namespace sbx::proto
