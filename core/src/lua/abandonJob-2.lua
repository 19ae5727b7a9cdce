--[[
  Take back a job whose submission failed after its record was written (its queue entry was
  refused, or its answer lost): the record and its event stream are deleted while it is still
  `queued`; a job a worker has claimed already is real, and stays.
  KEYS[1] job state hash      KEYS[2] job events stream
  Output: 1 taken back (or there was no record), 0 the job has moved on from `queued` (it runs)
]]
local status = redis.call('HGET', KEYS[1], 'status')
if status and status ~= 'queued' then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
