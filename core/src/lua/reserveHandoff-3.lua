--[[
  A job about to be placed on a host's own queue (core/src/placement/host-queues.ts, placeOn: by an
  API copy at submission, or by a worker handing on a job it took): its hand-off is recorded only if
  the host has a slot for it once every hand-off still pending for it is counted. Each process places
  from a view of the fleet of its own; this is where their placements meet, so that API copies behind
  a load balancer do not together place more on a host than it has room for (the rest would wait
  there for a slot or their deadline). A host's published room leaves out the jobs it took whose
  hand-off is still pending (counted here), and counts each before its hand-off goes
  (worker/src/placement/job-feeder.ts, room() and complete()).
  The count is ZLEXCOUNT of the host's members in the by-host index (O(log N)); before, every
  pending hand-off of the fleet was read (ZRANGE 0 -1: 129 µs of Redis a placement at 800 pending,
  474 µs at 3,000).
  KEYS[1] the handoffs zset (member "<host> <job> <priority>" -> deadline, ms)
  KEYS[2] the by-host index (the same members, score 0: ordered by host)
  KEYS[3] the capacity hash (host -> {"s": free slots, ...})
  ARGV[1] host   ARGV[2] member   ARGV[3] deadline
  Returns 1: added (a slot is left for it, or the host's room is not known here: placed as decided);
  0: not added, the host has no slot for it.
]]
local ok, room = pcall(cjson.decode, redis.call('HGET', KEYS[3], ARGV[1]) or '')
if ok and type(room) == 'table' and type(room.s) == 'number' then
  local pending = redis.call('ZLEXCOUNT', KEYS[2], '[' .. ARGV[1] .. ' ', '(' .. ARGV[1] .. '!')
  if redis.call('ZSCORE', KEYS[2], ARGV[2]) then pending = pending - 1 end
  if pending >= room.s then return 0 end
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[2])
return 1
