--[[
  The jobs of a worker found dead, read in the same step as the look at its heartbeat, so a
  heartbeat landing in between cannot make a live worker's jobs look lost.
  KEYS[1] the worker's info key (its heartbeat, with a TTL)
  KEYS[2] the worker's running set
  Output: false (nil) if the worker is alive, else the ids in its running set
]]
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
return redis.call('SMEMBERS', KEYS[2])
