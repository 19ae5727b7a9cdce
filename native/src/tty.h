// Interactive jobs (`tty`): the pseudo-terminal is allocated by sbx-init inside the job, from the
// job's own devpts instance (mounted `newinstance` by mnt.cc), after every privilege is dropped and
// the seccomp filter is in place, so it is exactly what the job itself could open: no host tty is
// ever involved. The master goes to the launcher over the sync socket (SCM_RIGHTS, tag 'T'); the
// slave becomes the controlling terminal of the command in a new session and its fds 0-2.
#pragma once
#include <stdint.h>
#include "error.h"

namespace sbx::tty {

// sbx-init: open /dev/ptmx (the job's), unlock it, size it, and open its peer (TIOCGPTPEER: no path
// lookup). Both O_CLOEXEC.
bool openInInit(uint32_t rows, uint32_t cols, int& master, int& slave, Error& err);

// sbx-init: send `fd` to the launcher as a 'T' message on the sync socket.
bool sendMasterInInit(int syncFd, int fd, Error& err);

// The command's child, before execve: new session, `slave` as controlling terminal and fds 0-2.
// Returns errno (0 on success).
int becomeControllingInCommand(int slave);

// Launcher: TIOCSWINSZ on the master (the kernel sends SIGWINCH to the foreground process group).
bool resize(int master, uint32_t rows, uint32_t cols, Error& err);

}  // namespace sbx::tty
