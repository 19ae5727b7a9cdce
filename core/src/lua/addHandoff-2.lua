--[[
  A hand-off recorded without a check (HostQueues.handOff: a job larger than the handing worker's
  whole budget goes whatever): its deadline, and its member in the by-host index, together.
  KEYS[1] the handoffs zset   KEYS[2] the by-host index
  ARGV[1] member "<host> <job> <priority>"   ARGV[2] deadline, ms
]]
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return 1
