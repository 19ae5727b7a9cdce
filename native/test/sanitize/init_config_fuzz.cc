// sources: init_config.cc seccomp.cc
// The config packet between the launcher and sbx-init under the sanitizers: init_config::build
// (the launcher) of seeded specs (groups, cwd lengths up to the limit, tty, seccomp with and without
// file locks) must come back whole from init_config::parse (sbx-init, init_config_read.h); then the
// same packets mutated (header fields at their edges, cuts, bytes appended) must be refused or
// parse to pointers inside the packet. Each packet sits in a heap block of exactly its size, so a
// read past it is ASan's. Deterministic: fixed seed.   init_config_fuzz [cases]
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <string>

#include "init_config.h"
#include "init_config_read.h"

namespace {

uint64_t gRng = 0xc0f16c0f16c0f16bull;

uint64_t next() {  // xorshift64*
  gRng ^= gRng >> 12, gRng ^= gRng << 25, gRng ^= gRng >> 27;
  return gRng * 2685821657736338717ull;
}
uint64_t below(uint64_t n) { return n ? next() % n : 0; }

void seedSpec(sbx::spec::Spec& s, sbx::spec::Options& o) {
  s.uid = (uint32_t)next();
  s.gid = (uint32_t)next();
  for (uint64_t i = 0, n = below(3) ? below(8) : 64; i < n; i++) s.groups.push_back((uint32_t)next());
  static const size_t kCwdLens[] = {0, 1, 17, 4094, 4095};
  s.cwd.assign(kCwdLens[below(5)], 'd');
  if (!s.cwd.empty()) s.cwd[0] = '/';
  s.tty = below(2);
  s.ttyRows = (uint32_t)below(65536);
  s.ttyCols = (uint32_t)below(65536);
  s.limits.cpuTimeMs = below(2) ? below(1ull << 40) : 0;
  o.seccomp = below(4) != 0;
  o.denyFileLocks = below(2);
  o.userns = below(2);
}

// The packet in a heap block of exactly its size (aligned: malloc's 16 bytes), for parse.
struct Packet {
  unsigned char* p;
  size_t n;
  explicit Packet(const std::string& bytes) : p((unsigned char*)malloc(bytes.size() ? bytes.size() : 1)), n(bytes.size()) {
    memcpy(p, bytes.data(), n);
  }
  ~Packet() { free(p); }
};

bool sameAsBuilt(const sbx::init_config::Config& c, const sbx::spec::Spec& s) {
  return c.h->uid == s.uid && c.h->gid == s.gid && c.h->ngroups == s.groups.size() &&
         (s.groups.empty() || memcmp(c.groups, s.groups.data(), s.groups.size() * 4) == 0) && s.cwd == c.cwd;
}

volatile uint64_t gSink;

// What parse accepted lies inside the packet (every group and filter instruction is read: ASan
// checks each), and the cwd copy ends within cwdLen (a NUL in the bytes only shortens it).
bool inside(const sbx::init_config::Config& c, const Packet& pk) {
  for (uint32_t i = 0; i < c.h->ngroups; i++) gSink = gSink + c.groups[i];
  for (uint32_t i = 0; i < c.h->nfilter; i++) gSink = gSink + c.filter[i].k;
  return (const unsigned char*)(c.filter + c.h->nfilter) + c.h->cwdLen == pk.p + pk.n && strnlen(c.cwd, sizeof c.cwd) <= c.h->cwdLen;
}

void mutate(std::string& b) {
  static const size_t kFields[] = {offsetof(sbx::proto::InitConfig, magic), offsetof(sbx::proto::InitConfig, ngroups),
                                   offsetof(sbx::proto::InitConfig, nfilter), offsetof(sbx::proto::InitConfig, cwdLen)};
  for (uint64_t i = 0, n = 1 + below(3); i < n; i++) {
    switch (below(4)) {
      case 0: {
        const uint32_t v[] = {0, 1, 63, 64, 65, 4095, 4096, (uint32_t)b.size(), (uint32_t)b.size() / 8, 0x40000000, 0x7fffffff, 0xffffffff, 0x20000000};
        memcpy(&b[kFields[below(4)]], &v[below(sizeof v / sizeof *v)], 4);
        break;
      }
      case 1: b.resize(below(b.size() + 1)); break;
      case 2: b.append(below(64), (char)next()); break;
      case 3: if (!b.empty()) b[below(b.size())] = (char)next(); break;
    }
    if (b.size() < sizeof(sbx::proto::InitConfig)) return;
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int cases = argc > 1 ? atoi(argv[1]) : 3000;
  int failures = 0, built = 0, accepted = 0;
  for (int i = 0; i < cases; i++) {
    sbx::spec::Spec s;
    sbx::spec::Options o;
    seedSpec(s, o);
    std::string bytes;
    sbx::Error err;
    if (!sbx::init_config::build(s, o, bytes, err)) continue;  // too large for a packet: refused there
    built++;
    sbx::init_config::Config c;
    {
      Packet pk(bytes);
      if (!sbx::init_config::parse(pk.p, pk.n, c, err) || !sameAsBuilt(c, s)) {
        fprintf(stderr, "init_config_fuzz: case %d: a built config did not parse back\n", i);
        failures++;
      }
    }
    mutate(bytes);
    Packet pk(bytes);
    if (sbx::init_config::parse(pk.p, pk.n, c, err)) {
      accepted++;
      if (!inside(c, pk)) fprintf(stderr, "init_config_fuzz: case %d: parsed past the packet\n", i), failures++;
    }
  }
  fprintf(stderr, "init_config_fuzz: %d cases (%d built and parsed back, %d mutated ones still accepted), %d failed\n", cases, built,
          accepted, failures);
  return failures ? 1 : 0;
}
