--[[
  Append one frame to an interactive job's stdin stream (core/src/stdin-stream.ts), in order, only
  while the job can still read it, and only while the stream holds fewer than ARGV[1] unread frames
  (the worker deletes each frame once applied): the caller waits and retries on 'full', so memory
  is bounded and no frame is dropped.
  KEYS[1] job state hash      KEYS[2] job stdin stream
  ARGV[1] max unread frames   ARGV[2] safety TTL ms (the worker or the job's end deletes it first)
  ARGV[3] frame type          ARGV[4] payload
  ARGV[5] the writer's token (one attached client's: random), or '' for an unnumbered frame
  ARGV[6] this frame's number among that writer's frames (1, 2, …)
  A frame numbered no higher than the last one appended from its writer (hash field
  `stdin:<token>`) is a replay: appended once, its answer lost with the connection and the call
  sent again by ioredis after reconnecting. It is not appended again (a keystroke or a signal
  would reach the job twice) and answers '0-0', as appended.
  Output: the new entry id, 'full', or the job's status when it has ended ('' if the job is gone)
]]
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return '' end
if status ~= 'queued' and status ~= 'pulling' and status ~= 'running' then return status end
local writer = ARGV[5] ~= '' and ('stdin:' .. ARGV[5]) or nil
if writer and tonumber(redis.call('HGET', KEYS[1], writer) or '0') >= tonumber(ARGV[6]) then return '0-0' end
if redis.call('XLEN', KEYS[2]) >= tonumber(ARGV[1]) then return 'full' end
local id = redis.call('XADD', KEYS[2], '*', 't', ARGV[3], 'p', ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
if writer then redis.call('HSET', KEYS[1], writer, ARGV[6]) end
return id
