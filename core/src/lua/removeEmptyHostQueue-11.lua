--[[
  Remove the BullMQ keys of a worker's own queue (jobs.host.<id>, core/src/placement/host-queues.ts)
  once the worker is gone for good, only if no entry is left in it: checked and removed in one step,
  so an entry added meanwhile is never removed with them (it is added after, and its hand-off
  deadline sends it on). The queue's keys are all in the `{<p>}` slot.
  KEYS[1] wait   KEYS[2] paused   KEYS[3] active   KEYS[4] prioritized   KEYS[5] delayed
  KEYS[6] waiting-children        (an entry in any of these: nothing is removed)
  KEYS[7] completed   KEYS[8] failed (entries kept done: removed with their job hashes)
  KEYS[9] meta   KEYS[10] events   KEYS[11] id
  ARGV[1] the queue's key prefix, '<prefix>:<queue name>:' (a job's hash is ARGV[1] .. job id)
  Output: 1 removed, 0 entries left (nothing removed)
]]
for i = 1, 6 do
  if redis.call('EXISTS', KEYS[i]) == 1 then return 0 end
end
local base = ARGV[1]
for i = 7, 8 do
  for _, id in ipairs(redis.call('ZRANGE', KEYS[i], 0, -1)) do
    redis.call('DEL', base .. id, base .. id .. ':logs', base .. id .. ':lock', base .. id .. ':dependencies', base .. id .. ':processed')
  end
end
redis.call('DEL', KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11])
-- The rest of BullMQ's keys of a queue (bullmq/dist/esm/classes/queue-keys.js), beside them in the slot.
for _, suffix in ipairs({ 'stalled', 'stalled-check', 'limiter', 'pc', 'marker', 'repeat', 'de', 'metrics:completed', 'metrics:completed:data', 'metrics:failed', 'metrics:failed:data' }) do
  redis.call('DEL', base .. suffix)
end
return 1
