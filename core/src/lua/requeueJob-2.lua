--[[
  Put a job whose worker was lost back in the queue, only if its command never started: the job is
  still `pulling` in the attempt the caller saw, that attempt never recorded its start (startJob-1),
  and no cancel was asked for. Compare-and-set on (status, attempt), so of a janitor, an API reader
  and a slow worker that race on the same job exactly one wins (core/src/job-lifecycle.ts).
  KEYS[1] job state hash      KEYS[2] job events stream
  ARGV[1] the attempt the caller saw (the hash field `attempt`, absent = 1)
  ARGV[2] the requeued job document JSON (status queued, attempts = ARGV[1] + 1)
  ARGV[3] status event data JSON      ARGV[4] notify channel
  ARGV[5] this call's own token (random), kept in the hash field `requeue`
  Output: 'ok'; 'started' (the command may have started: never run twice), 'cancel' (a cancel is
  pending), 'attempt' (another attempt by now), or the status found ('' if the job is gone)
  A replay (the job is `queued` by this very call, its token: the call applied once, its answer
  lost with the connection and the call sent again by ioredis after reconnecting) answers 'ok'
  again and changes nothing: the caller then adds the queue entry. Without this it read 'queued',
  took the job for someone else's, and the job stayed queued on no queue. (Janitors racing with
  the same document have their own tokens: one wins.)
]]
local f = redis.call('HMGET', KEYS[1], 'status', 'attempt', 'started', 'cancel', 'requeue')
if not f[1] then return '' end
if f[1] == 'queued' and f[5] == ARGV[5] then return 'ok' end
if f[1] ~= 'pulling' then return f[1] end
local attempt = f[2] or '1'
if attempt ~= ARGV[1] then return 'attempt' end
if f[3] == attempt then return 'started' end
if f[4] == '1' then return 'cancel' end
redis.call('HSET', KEYS[1], 'status', 'queued', 'doc', ARGV[2], 'attempt', tostring(tonumber(attempt) + 1), 'requeue', ARGV[5])
redis.call('XADD', KEYS[2], '*', 'type', 'status', 'data', ARGV[3])
redis.call('PUBLISH', ARGV[4], 'status')
return 'ok'
