-- begin.lua: mark a claimed batch `sending`, right before its request leaves.
--
-- KEYS[1] batch record {ns}:batch:{id}   KEYS[2] inflight zset {ns}:inflight
-- KEYS[3] gauges hash {ns}:gauges
-- ARGV[1] now_ms ('' = Redis TIME)  ARGV[2] batch id  ARGV[3] owner  ARGV[4] lease_ms
--
-- Returns now_ms if the caller may send now, 0 if it lost the batch (its lease ran out and
-- another attempt claimed it): then it must not send.
local now_ms = clock_ms(ARGV[1])
local f = redis.call('HMGET', KEYS[1], 'state', 'owner')
if (f[1] ~= 'claimed' and f[1] ~= 'sending') or f[2] ~= ARGV[3] then
  return 0
end
local lease_until = now_ms + tonumber(ARGV[4])
move_state(KEYS[1], KEYS[3], 'sending')
redis.call('HSET', KEYS[1], 'lease_until', lease_until, 'updated_ms', now_ms)
redis.call('ZADD', KEYS[2], lease_until, ARGV[2])
return now_ms
