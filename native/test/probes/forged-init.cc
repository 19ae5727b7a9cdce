// A pid 1 that forges its report: in place of sbx-init (loaded by the test with the addon's init()),
// it takes the launcher's config and answers 'F' with every byte of the message set, the error's
// stage, syscall and path without a terminating NUL. What a pid 1 the job had taken over could send.
#include <string.h>
#include <sys/socket.h>

#include "proto.h"

int main() {
  static char config[sbx::proto::kMaxConfigBytes];
  recv(sbx::proto::kInitSyncFd, config, sizeof config, 0);
  sbx::proto::Msg m;
  memset(&m, 'A', sizeof m);
  m.tag = 'F';
  m.error.err = 1;  // EPERM
  m.error.kind = sbx::kSystem;
  send(sbx::proto::kInitSyncFd, &m, sizeof m, MSG_NOSIGNAL);
  return 1;
}
