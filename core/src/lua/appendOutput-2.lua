--[[
  Append a running job's output to its event stream and ping its listeners, only while the job is
  `running` in the caller's attempt: a worker may send output right behind its move to `running`
  without waiting for the answer (worker/src/job-runner.ts), and output of a job that someone else
  ended meanwhile (declared lost, say) must never follow that end in the stream.
  KEYS[1] job state hash      KEYS[2] job events stream
  ARGV[1] notify channel      ARGV[2] the caller's attempt
  ARGV[3], ARGV[4], …        pairs of event type ('stdout' | 'stderr') and data JSON ({"data":"…"})
  Output: the number of events appended (0: not running in that attempt; nothing was written)
]]
local f = redis.call('HMGET', KEYS[1], 'status', 'attempt')
if f[1] ~= 'running' or (f[2] or '1') ~= ARGV[2] then return 0 end
local n = 0
for i = 3, #ARGV - 1, 2 do
  redis.call('XADD', KEYS[2], '*', 'type', ARGV[i], 'data', ARGV[i + 1])
  n = n + 1
end
if n > 0 then redis.call('PUBLISH', ARGV[1], 'output') end
return n
