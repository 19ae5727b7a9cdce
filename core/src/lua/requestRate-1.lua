--[[
  A tenant's requests across every API process (api/src/tenant-request-rate.ts): each process admits
  requests by its own token bucket and reports how many it admitted every REPORT_MS; this debits
  them from the tenant's shared bucket, which refills at the same rate. A balance below zero means
  the processes together admitted more than the rate allows: each that reports it refuses the
  tenant's requests until the debt is refilled.
  KEYS[1] the tenant's shared bucket (hash: tokens, ts)
  ARGV[1] requests per second   ARGV[2] bucket size (burst)   ARGV[3] requests admitted since the last report
  Output: the balance after the debit, in tokens (a decimal string; at least -burst)
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(bucket[1]) or burst
local ts = tonumber(bucket[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000) - tonumber(ARGV[3])
-- A debt of more than one burst is not kept: a spike (every process at once) refuses the tenant
-- for at most burst / rate seconds, not for as long as the spike was large.
if tokens < -burst then tokens = -burst end
local balance = string.format('%.3f', tokens)
redis.call('HSET', KEYS[1], 'tokens', balance, 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(2 * burst * 1000 / rate) + 1000)
return balance
