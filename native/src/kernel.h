// The running kernel's version, read once (uname) and used by every check that depends on it.
#pragma once

namespace sbx::kernel {

struct Version {
  int major = 0, minor = 0;
  // True when this kernel is major.minor or newer (false if the release could not be read).
  bool atLeast(int maj, int min) const { return major > maj || (major == maj && minor >= min); }
};

// Parsed from uname(2)'s release ("6.1.0-18-amd64" -> 6.1) on first use, then cached.
const Version& version();

// "6.1.0-18-amd64" -> {6, 1}; the parts that do not parse stay 0.
Version parse(const char* release);

}  // namespace sbx::kernel
