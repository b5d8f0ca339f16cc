-- pause.lua: stop every sender until `until_ms` (a 429's Retry-After); never shortens a pause.
--
-- KEYS[1] pause string {ns}:pause
-- ARGV[1] now_ms  ARGV[2] until_ms
--
-- Returns the pause end in ms now in force.
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local until_ms = tonumber(ARGV[2])
if until_ms <= current then
  return current
end
redis.call('SET', KEYS[1], until_ms, 'PX', until_ms - tonumber(ARGV[1]) + 1)
return until_ms
