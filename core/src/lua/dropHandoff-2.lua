--[[
  A hand-off is over (its host took the job, a sweep sent it on, its host left): out of the handoffs
  zset and the by-host index together. Returns 1 if it was pending.
  KEYS[1] the handoffs zset   KEYS[2] the by-host index
  ARGV[1] member "<host> <job> <priority>"
]]
redis.call('ZREM', KEYS[2], ARGV[1])
return redis.call('ZREM', KEYS[1], ARGV[1])
