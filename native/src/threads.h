// Starting the launcher's own threads where the host may refuse one. std::thread throws
// std::system_error (EAGAIN) when no thread can be made (the worker's cgroup at its pids.max, the
// host at kernel.threads-max); thrown through Node's addon boundary or on a background thread, that
// ended the worker: "terminate called after throwing an instance of 'std::system_error'" (auditor:
// a worker whose pids cgroup was full, at the next job's launch). These report it instead.
#pragma once
#include <errno.h>

#include <system_error>
#include <thread>
#include <utility>

namespace sbx::threads {

// Runs `fn` on a thread of its own and waits for it. False, with `err` set (EAGAIN), when no
// thread could be made: `fn` did not run.
template <class F>
bool runOnOwnThread(F&& fn, int& err) {
  try {
    std::thread(std::forward<F>(fn)).join();
    return true;
  } catch (const std::system_error& e) {
    err = e.code().value() ? e.code().value() : EAGAIN;
    return false;
  }
}

// Starts `fn` on a detached thread. False when no thread could be made: `fn` does not run.
template <class F>
bool startDetached(F&& fn) {
  try {
    std::thread(std::forward<F>(fn)).detach();
    return true;
  } catch (const std::system_error&) {
    return false;
  }
}

}  // namespace sbx::threads
