--[[
  Append a running job's output to its event stream and ping its listeners, only while the job is
  `running` in the caller's attempt: a worker may send output right behind its move to `running`
  without waiting for the answer (worker/src/job-runner.ts), and output of a job that someone else
  ended meanwhile (declared lost, say) must never follow that end in the stream.
  KEYS[1] job state hash      KEYS[2] job events stream
  ARGV[1] notify channel      ARGV[2] the caller's attempt
  ARGV[3] this append's number among its worker's appends to the attempt (1, 2, …), or 0 for none
  ARGV[4], ARGV[5], …        pairs of event type ('stdout' | 'stderr') and data JSON ({"data":"…"})
  An append numbered no higher than the last one applied (hash field `appended`) is a replay: this
  call applied once, its answer lost with the connection (Redis killed before answering, the link
  dropped) and the call sent again by ioredis after reconnecting. It answers as the first did and
  appends nothing: without this the output showed twice.
  Output: the number of events appended (0: not running in that attempt; nothing was written)
]]
local f = redis.call('HMGET', KEYS[1], 'status', 'attempt', 'appended')
if f[1] ~= 'running' or (f[2] or '1') ~= ARGV[2] then return 0 end
local events = (#ARGV - 3) / 2
local number = tonumber(ARGV[3])
if number > 0 then
  if tonumber(f[3] or '0') >= number then return events end
  redis.call('HSET', KEYS[1], 'appended', ARGV[3])
end
for i = 4, #ARGV - 1, 2 do
  redis.call('XADD', KEYS[2], '*', 'type', ARGV[i], 'data', ARGV[i + 1])
end
if events > 0 then redis.call('PUBLISH', ARGV[1], 'output') end
return events
