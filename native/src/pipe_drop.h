// A job's output past what is kept, dropped in the kernel: splice(2) from the job's pipe to
// /dev/null, driven by a uv_poll on the JS thread's loop. No byte is copied to user space and no
// JavaScript runs per read. Reading it through a Node stream cost the worker ~0.45 s of its event
// loop per GiB (a `yes` past its cap kept one CPU of the worker busy); a splice of a full pipe to
// /dev/null costs microseconds.
#pragma once
#include <napi.h>

#include "error.h"

namespace sbx::pipe_drop {

// Starts dropping what arrives on `fd` (a pipe's read end: refused otherwise, EINVAL; it is
// duplicated, the caller closes its own). `onEnd(bytes, errno, agoMs)` is called once, on the JS
// thread, when the pipe has ended (every writer closed it: errno 0) or failed; agoMs as lastAgoMs()
// gave it then. A handle for stop(), or -1. If the environment goes first (a worker thread ends),
// the drop stops with it, its pipe closed, onEnd not called.
int start(Napi::Env env, int fd, Napi::Function onEnd, Error& err);

// Handles are answered only in the environment that started them (-1 elsewhere).
// Stops the drop `handle` (its pipe closed here): the bytes dropped so far, or -1 when no such drop
// runs (it ended: onEnd was called). onEnd is not called after.
double stop(Napi::Env env, int handle);

// The bytes the running drop `handle` has dropped so far, or -1 when it is not running.
double soFar(Napi::Env env, int handle);

// Milliseconds since the running drop `handle` last dropped bytes (the job's latest output, for
// limits.outputIdleTimeoutMs), or -1 when it has dropped none or is not running.
double lastAgoMs(Napi::Env env, int handle);

}  // namespace sbx::pipe_drop
