--[[
  A tenant's requests across every API process (api/src/tenant-request-rate.ts): each process admits
  requests by its own token bucket and reports how many it admitted every REPORT_MS; this debits
  them from the tenant's shared bucket, which refills at the same rate. A balance below zero means
  the processes together admitted more than the rate allows: each that reports it refuses the
  tenant's requests until the debt is refilled.
  KEYS[1] the tenant's shared bucket (hash: tokens, ts)
  KEYS[2] the reporting process's own record for that tenant (the number of its last report applied)
  ARGV[1] requests per second   ARGV[2] bucket size (burst)   ARGV[3] requests admitted since the last report
  ARGV[4] this report's number among the process's reports for the tenant (1, 2, …; one in flight at
          a time), or 0 for none
  Output: the balance after the debit, in tokens (a decimal string; at least -burst)
  A report numbered no higher than the last one applied is a replay: it was applied, its answer was
  lost with the connection (Redis killed before answering, the link dropped) and ioredis sent it
  again after reconnecting. It debits nothing and answers the balance now. Without this the
  tenant's requests were debited twice, and it was refused for longer than its rate says.
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local number = tonumber(ARGV[4])
local replay = number > 0 and tonumber(redis.call('GET', KEYS[2]) or '0') >= number
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(bucket[1]) or burst
local ts = tonumber(bucket[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
if replay then return string.format('%.3f', tokens) end
tokens = tokens - tonumber(ARGV[3])
-- A debt of more than one burst is not kept: a spike (every process at once) refuses the tenant
-- for at most burst / rate seconds, not for as long as the spike was large.
if tokens < -burst then tokens = -burst end
local balance = string.format('%.3f', tokens)
local ttl = math.ceil(2 * burst * 1000 / rate) + 1000
redis.call('HSET', KEYS[1], 'tokens', balance, 'ts', now)
redis.call('PEXPIRE', KEYS[1], ttl)
if number > 0 then redis.call('SET', KEYS[2], number, 'PX', ttl) end
return balance
