--[[
  Create a job: its state hash and the first event of its stream, both with a TTL.
  KEYS[1] job state hash      KEYS[2] job events stream
  ARGV[1] job document JSON   ARGV[2] job spec JSON   ARGV[3] tenant   ARGV[4] ttl seconds
  ARGV[5] the job's registryAuth sealed (core/src/secrets/registry-auth.ts), or '' for none
  ARGV[6] the inbox channel of the API that waits for this job's end (?wait=true), or '' for none:
          the final transition pings it too (transitionJob-2), so that API needs no SUBSCRIBE per job
  Output: 1 created, 0 a job with this id exists already
]]
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'doc', ARGV[1], 'spec', ARGV[2], 'tenant', ARGV[3], 'status', 'queued')
if ARGV[5] and ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'auth', ARGV[5]) end
if ARGV[6] and ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'waiter', ARGV[6]) end
redis.call('XADD', KEYS[2], '*', 'type', 'status', 'data', '{"status":"queued"}')
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 1
