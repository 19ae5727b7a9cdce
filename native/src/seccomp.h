// Seccomp (P22): an allow-list at least as strict as Docker's default profile, default EPERM for
// known syscalls, ENOSYS for numbers newer than the profile and for clone3 (so libc falls back to
// clone, whose flags we can inspect), wrong arch killed, x32 numbers refused. Built by the launcher,
// installed by sbx-init (seccomp_install.h) as the last step before it forks the command.
#pragma once
#include <linux/filter.h>
#include <vector>

namespace sbx::seccomp {

// denyFileLocks (P30 fileLocks 'deny'): flock and fcntl F_SETLK/F_SETLKW/F_OFD_SETLK/F_OFD_SETLKW -> EPERM.
std::vector<struct sock_filter> build(bool denyFileLocks = false);

}  // namespace sbx::seccomp
