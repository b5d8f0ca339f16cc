-- pause.lua: stop every sender for `ARGV[2]` ms from now (a 429's Retry-After); never
-- shortens a pause.
--
-- KEYS[1] pause string {ns}:pause   the time (ms, shared clock) until which nobody sends
-- ARGV[1] now_ms ('' = Redis TIME)  ARGV[2] pause length ms
--
-- Returns the ms of pause now left in force.
local now_ms = clock_ms(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local until_ms = now_ms + tonumber(ARGV[2])
if until_ms <= current then
  return current - now_ms
end
redis.call('SET', KEYS[1], until_ms, 'PX', until_ms - now_ms + 1)
return until_ms - now_ms
