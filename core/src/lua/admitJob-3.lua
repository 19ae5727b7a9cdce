--[[
  Admit a tenant's new job against its quota (core/src/tenant-quota.ts), atomically, in the
  tenant's slot: the submission token bucket, then the jobs queued or running at once; on
  success the job joins the tenant's active set with its queue priority.
  KEYS[1] active jobs zset (id -> priority)   KEYS[2] token bucket hash
  KEYS[3] bytes its jobs stored this hour, records and output (core/src/tenant-storage-budget.ts)
  ARGV[1] job id
  ARGV[2] submissions per second (0 = no limit)   ARGV[3] bucket size (burst)
  ARGV[4] most jobs queued or running (0 = no limit)
  ARGV[5] active set ttl seconds   ARGV[6] highest priority (BullMQ's limit)
  ARGV[7] stored bytes per hour (0 = no limit)   ARGV[8] ms until the hour ends
  ARGV[9] the new job's record, in bytes: counted against ARGV[7] once it is admitted
  Output: {'ok', priority} | {'rate', ms until a token is back} | {'active', jobs counted}
          | {'stored', ms until the hour ends}: its storage budget for the hour is used up
  Priority = 1 + the tenant's active jobs, but never below its highest queued one, so its own jobs
  stay in submission order while a tenant without a backlog goes before it.
  A job already in the active set was admitted by this very call, whose answer was lost with the
  connection (Redis killed before answering, the link dropped) and which ioredis sent again after
  reconnecting: it answers as the first did and counts nothing again. Without this the replay took
  a second token, counted the record's bytes twice and queued the job behind itself.
]]
local admitted = redis.call('ZSCORE', KEYS[1], ARGV[1])
if admitted then return {'ok', tonumber(admitted)} end

local budget = tonumber(ARGV[7])
if budget > 0 and (tonumber(redis.call('GET', KEYS[3])) or 0) >= budget then
  return {'stored', tonumber(ARGV[8])}
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- The token is looked at first and taken last: a submission refused for its active jobs spends none
-- (else a tenant at its active quota that kept trying found its rate used up once a job ended).
local rate = tonumber(ARGV[2])
local tokens, burst
if rate > 0 then
  burst = tonumber(ARGV[3])
  local bucket = redis.call('HMGET', KEYS[2], 'tokens', 'ts')
  local ts = tonumber(bucket[2]) or now
  tokens = math.min(burst, (tonumber(bucket[1]) or burst) + math.max(0, now - ts) * rate / 1000)
  if tokens < 1 then
    return {'rate', math.ceil((1 - tokens) * 1000 / rate)}
  end
end

local count = redis.call('ZCARD', KEYS[1])
local maxActive = tonumber(ARGV[4])
if maxActive > 0 and count >= maxActive then
  return {'active', count}
end
if rate > 0 then
  redis.call('HSET', KEYS[2], 'tokens', string.format('%.6f', tokens - 1), 'ts', now)
  redis.call('PEXPIRE', KEYS[2], math.ceil(burst * 1000 / rate) + 1000)
end
local priority = count + 1
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if top[2] and tonumber(top[2]) > priority then priority = tonumber(top[2]) end
local cap = tonumber(ARGV[6])
if priority > cap then priority = cap end
redis.call('ZADD', KEYS[1], priority, ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[5])

if budget > 0 then
  redis.call('INCRBY', KEYS[3], ARGV[9])
  redis.call('PEXPIRE', KEYS[3], 7200000)
end
return {'ok', priority}
