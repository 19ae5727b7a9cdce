--[[
  Grant a tenant's output what is left of its storage budget for the hour, up to what it asks for
  (core/src/tenant-storage-budget.ts): the budget is never overdrawn.
  KEYS[1] bytes the tenant's jobs stored this hour
  ARGV[1] bytes asked for   ARGV[2] the budget   ARGV[3] the count's TTL in ms
  Output: {granted bytes, the hour's count after}
]]
local used = tonumber(redis.call('GET', KEYS[1])) or 0
local granted = math.min(tonumber(ARGV[1]), math.max(0, tonumber(ARGV[2]) - used))
if granted > 0 then redis.call('INCRBY', KEYS[1], granted) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {granted, used + granted}
