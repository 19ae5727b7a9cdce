--[[
  A new job's entry in its tenant's index, and the index's TTL pushed out to outlive the job's record,
  so the index of a tenant that stops submitting expires with (shortly after) its last record. The
  TTL only ever grows: a job with a shorter record TTL never cuts short an older job's entry. An
  index without a TTL (written before there was one) gets one here.
  KEYS[1] the tenant's index (zset: job id by creation ms)
  ARGV[1] creation ms   ARGV[2] job id
  ARGV[3] seconds the index must live at least (the record's longest possible life, plus a margin)
  Output: ZADD's (1 added, 0 already there)
]]
local added = redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
local want = tonumber(ARGV[3])
if redis.call('TTL', KEYS[1]) < want then redis.call('EXPIRE', KEYS[1], want) end
return added
