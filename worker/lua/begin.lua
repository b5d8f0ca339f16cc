-- begin.lua: mark a claimed batch `sending`, right before its request leaves.
--
-- KEYS[1] batch record {ns}:batch:{id}   KEYS[2] inflight zset {ns}:inflight
-- ARGV[1] now_ms  ARGV[2] batch id  ARGV[3] owner  ARGV[4] lease_ms
--
-- Returns 1 if the caller may send now, 0 if it lost the batch (its lease ran out and another
-- attempt claimed it): then it must not send.
local f = redis.call('HMGET', KEYS[1], 'state', 'owner')
if (f[1] ~= 'claimed' and f[1] ~= 'sending') or f[2] ~= ARGV[3] then
  return 0
end
local lease_until = tonumber(ARGV[1]) + tonumber(ARGV[4])
redis.call('HSET', KEYS[1], 'state', 'sending', 'lease_until', lease_until)
redis.call('ZADD', KEYS[2], lease_until, ARGV[2])
return 1
