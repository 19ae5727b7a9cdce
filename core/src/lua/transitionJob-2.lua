--[[
  Move a job from one status to the next, compare-and-set on the status (statuses only move
  forward, but for a lost worker's `pulling` job queued again, which ARGV[8] tells apart: no ABA),
  store the new document, append one event and ping listeners.
  KEYS[1] job state hash      KEYS[2] job events stream
  ARGV[1] expected current status(es), comma separated
  ARGV[2] new status          ARGV[3] new document JSON
  ARGV[4] event type          ARGV[5] event data JSON
  ARGV[6] notify channel      ARGV[7] ttl seconds to set on both keys, or 0 to leave it
  ARGV[8] the attempt the caller holds, or '' not to check: a job a lost worker left `pulling` can
          be queued again (requeueJob-2), so `pulling` alone could be another worker's later attempt
  ARGV[9] the attempt to record as started with this move (field `started`, as startJob-1: a worker
          claiming a job whose command it starts at once), or '' (absent) for none; the job must be
          in that attempt
  An 'exit' event (the job ended, whatever the status and whoever ends it) deletes the job's sealed
  registryAuth (field 'auth'): credentials live no longer than the job; and its stdin stream
  (<same prefix>:stdin, interactive jobs), so no frame outlives it; and pings the inbox of the API
  waiting for it (field 'waiter', createJob-2) with the job's notify channel, after a ping that
  carries the final document and the output when its stream holds at most 64 events, 64 KiB of output.
  A replay (the job already holds exactly this status and document: the same call applied once,
  its answer lost with the connection and the call sent again by the client after reconnecting,
  ioredis autoResendUnfulfilledCommands) answers 'ok' again and changes nothing; without this the
  caller would read its own write as someone else's and leave the job behind.
  Output: 'ok', the current status when it was not one of ARGV[1] ('' if the job is gone), or
  'attempt' when the job is in another attempt than ARGV[8]
]]
local current = redis.call('HGET', KEYS[1], 'status')
if not current then return '' end
if current == ARGV[2] and redis.call('HGET', KEYS[1], 'doc') == ARGV[3] then return 'ok' end
local allowed = false
for s in string.gmatch(ARGV[1], '[^,]+') do
  if s == current then allowed = true end
end
if not allowed then return current end
if ARGV[8] ~= '' and (redis.call('HGET', KEYS[1], 'attempt') or '1') ~= ARGV[8] then return 'attempt' end
local started = ARGV[9] or ''
if started ~= '' and (redis.call('HGET', KEYS[1], 'attempt') or '1') ~= started then return 'attempt' end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'doc', ARGV[3])
if started ~= '' then redis.call('HSET', KEYS[1], 'started', started) end
if ARGV[4] == 'exit' then
  redis.call('HDEL', KEYS[1], 'auth')
  -- an interactive job's stdin stream (core/src/stdin-stream.ts) ends with it: same hash tag, same slot
  redis.call('DEL', (string.gsub(KEYS[1], ':state$', ':stdin')))
end
redis.call('XADD', KEYS[2], '*', 'type', ARGV[4], 'data', ARGV[5])
if tonumber(ARGV[7]) > 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[7])
  redis.call('EXPIRE', KEYS[2], ARGV[7])
end
redis.call('PUBLISH', ARGV[6], ARGV[4])
if ARGV[4] == 'exit' then
  local waiter = redis.call('HGET', KEYS[1], 'waiter')
  if waiter then
    -- The end itself first, when the output is small: '<notify channel>\n{"doc":…,"output":[[type,data],…]}'
    -- (an API that reads it answers ?wait=true with no read of its own: api/src/job-events-hub.ts);
    -- then the plain ping, which every API version understands (it then reads the job itself).
    -- Read one entry at a time and stop at the 65th or past 64 KiB of output: one XRANGE of 65
    -- entries copied a big output whole into the script (a 16 MiB binary output is ~64 appends of
    -- ~1 MiB of JSON each: 237 ms with Redis blocked for everyone, per job's end).
    local items, size, count, small, from = {}, 0, 0, true, '-'
    while small do
      local row = redis.call('XRANGE', KEYS[2], from, '+', 'COUNT', 1)[1]
      if not row then break end
      count = count + 1
      if count > 64 then small = false break end
      local fields, t, d = row[2], nil, nil
      for i = 1, #fields, 2 do
        if fields[i] == 'type' then t = fields[i + 1] elseif fields[i] == 'data' then d = fields[i + 1] end
      end
      -- data is JSON written by the worker (appendOutput): {"data":"…"}
      if (t == 'stdout' or t == 'stderr') and d then
        items[#items + 1] = '["' .. t .. '",' .. d .. ']'
        size = size + #d
        if size > 65536 then small = false end
      end
      from = '(' .. row[1]
    end
    if small then
      local callback = redis.call('HGET', KEYS[1], 'callback')
      redis.call('PUBLISH', waiter, ARGV[6] .. '\n{"doc":' .. ARGV[3] .. (callback and (',"callback":' .. callback) or '') .. ',"output":[' .. table.concat(items, ',') .. ']}')
    end
    redis.call('PUBLISH', waiter, ARGV[6])
  end
end
return 'ok'
