--[[
  Grant a tenant's output what is left of its storage budget for the hour, up to what it asks for
  (core/src/tenant-storage-budget.ts): the budget is never overdrawn.
  KEYS[1] bytes the tenant's jobs stored this hour
  KEYS[2] the charging process's own record for that hour (hash: `last` charge number applied;
          `cut`, `cutGranted`: its first charge granted less than it asked, and what it got)
  ARGV[1] bytes asked for   ARGV[2] the budget   ARGV[3] the count's TTL in ms
  ARGV[4] this charge's number among the process's charges (1, 2, …; sent in that order over one
          connection, so applied in that order), or 0 for none
  Output: {granted bytes, the hour's count after}
  A charge numbered no higher than the last one applied is a replay: it was applied, its answer was
  lost with the connection (Redis killed before answering, the link dropped) and ioredis sent it
  again after reconnecting. It charges nothing and answers what the first sending got, known from
  the record: the hour's count only grows, so every charge before the process's first cut was
  granted in full, the cut got `cutGranted`, and every one after it nothing. Without this a replay
  charged the tenant twice for one batch of output.
]]
local asked = tonumber(ARGV[1])
local number = tonumber(ARGV[4])
local used = tonumber(redis.call('GET', KEYS[1])) or 0
if number > 0 then
  local mine = redis.call('HMGET', KEYS[2], 'last', 'cut', 'cutGranted')
  if tonumber(mine[1] or '0') >= number then
    local cut = tonumber(mine[2] or '0')
    if cut == 0 or number < cut then return {asked, used} end
    if number == cut then return {tonumber(mine[3]), used} end
    return {0, used}
  end
end
local granted = math.min(asked, math.max(0, tonumber(ARGV[2]) - used))
if granted > 0 then redis.call('INCRBY', KEYS[1], granted) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if number > 0 then
  redis.call('HSET', KEYS[2], 'last', number)
  if granted < asked and redis.call('HEXISTS', KEYS[2], 'cut') == 0 then
    redis.call('HSET', KEYS[2], 'cut', number, 'cutGranted', granted)
  end
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return {granted, used + granted}
