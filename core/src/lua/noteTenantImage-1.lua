--[[
  A tenant's job acquired an image (core/src/tenant-images.ts): remember it, for the tenant's
  GET /v1/images, as long as a finished job is kept; the oldest go past 10,000.
  KEYS[1] the tenant's images zset (member "<canonical reference>@<digest>" -> when, ms)
  ARGV[1] member   ARGV[2] how long it is remembered, seconds
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]) * 1000)
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -10001)
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
