-- slots.lua: a counting semaphore shared by every replica (LEVERS_MAX_IN_FLIGHT).
--
-- KEYS[1] holders zset {ns}:rate:slots   owner -> lease end (ms)
-- ARGV[1] now_ms ('' = Redis TIME)  ARGV[2] owner  ARGV[3] max holders  ARGV[4] lease_ms
--
-- Leases that ran out (their holder died) are dropped first, so a killed worker's slot comes
-- back by itself. Returns 1 if the caller now holds a slot, else minus the ms until the
-- earliest lease ends (a bound on how long to wait before asking again).
local now_ms = clock_ms(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if redis.call('ZSCORE', KEYS[1], ARGV[2]) or
   redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[4]), ARGV[2])
  return 1
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return -(tonumber(first[2]) - now_ms)
