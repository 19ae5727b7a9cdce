--[[
  Drop a dead worker from the index, only if it is still dead and none of its jobs is left to
  settle: a heartbeat that came back meanwhile keeps it (and its info key); jobs still in its
  running set keep it in the index for the janitor to find.
  KEYS[1] the worker's info key (its heartbeat, with a TTL)
  KEYS[2] the worker's running set
  KEYS[3] the workers index (zset)
  ARGV[1] the worker id
  Output: 'ok' (dropped), 'alive', or 'jobs' (jobs left to settle)
]]
if redis.call('EXISTS', KEYS[1]) == 1 then return 'alive' end
if redis.call('SCARD', KEYS[2]) > 0 then return 'jobs' end
redis.call('ZREM', KEYS[3], ARGV[1])
return 'ok'
