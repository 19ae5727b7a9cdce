--[[
  The point of no return of one attempt of a job, recorded by its worker before the command is
  executed: from here on a lost worker means error/worker_lost, never a second run. Only the
  worker that holds this attempt (status `pulling`, same attempt) may record it.
  KEYS[1] job state hash
  ARGV[1] the worker's attempt (the hash field `attempt` when it claimed the job, absent = 1)
  Output: 'ok', 'attempt' (requeued since: no longer this worker's), or the status found ('' gone)
]]
local f = redis.call('HMGET', KEYS[1], 'status', 'attempt')
if not f[1] then return '' end
if f[1] ~= 'pulling' then return f[1] end
if (f[2] or '1') ~= ARGV[1] then return 'attempt' end
redis.call('HSET', KEYS[1], 'started', ARGV[1])
return 'ok'
