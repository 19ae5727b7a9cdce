--[[
  The by-host index without members the handoffs zset no longer has: a process of an older version
  (during a rolling deploy) removes a hand-off from the handoffs zset only, and its member would
  count as pending for its host for ever. Run now and then by each worker (JobFeeder's sweeper,
  with the forgetting of silent hosts); O(N) in the pending hand-offs, off any job's path.
  KEYS[1] the handoffs zset   KEYS[2] the by-host index
  Returns how many members were removed.
]]
local removed = 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if not redis.call('ZSCORE', KEYS[1], m) then
    redis.call('ZREM', KEYS[2], m)
    removed = removed + 1
  end
end
return removed
