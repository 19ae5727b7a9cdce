--[[
  Keep a queued job's record alive while it waits: a job answered 202 is never lost, also when the
  queue holds it longer than its record was first given (SBX_JOB_TTL_SECONDS + its timeout + 1 h).
  Only a job still queued; only when less than ARGV[1] ms are left. Run by the queue audit
  (worker/src/queue-audit.ts).
  KEYS[1] job state hash      KEYS[2] job events stream
  ARGV[1] the least ms left before its life is renewed   ARGV[2] SBX_JOB_TTL_SECONDS
  Output: 1 renewed, 0 not (not queued, gone, or enough left)
]]
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return 0 end
local left = redis.call('PTTL', KEYS[1])
if left < 0 or left >= tonumber(ARGV[1]) then return 0 end
local ok, spec = pcall(cjson.decode, redis.call('HGET', KEYS[1], 'spec') or '')
local timeoutMs = ok and type(spec) == 'table' and type(spec.limits) == 'table' and tonumber(spec.limits.timeoutMs) or 0
local ttl = tonumber(ARGV[2]) + math.ceil(timeoutMs / 1000) + 3600
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
return 1
