-- reject.lua: remember a contact the aggregator refused, for `levers-admin status`.
--
-- KEYS[1] rejects list {ns}:rejects (newest first)  KEYS[2] stats hash {ns}:stats
-- ARGV[1] now_ms ('' = Redis TIME)  ARGV[2] reason  ARGV[3] record JSON (the number masked;
-- "at" is added here)  ARGV[4] how many to keep  ARGV[5] seconds the list lives after the
-- last reject
--
-- Returns the length of the list.
local now_ms = clock_ms(ARGV[1])
local record = string.sub(ARGV[3], 1, -2) .. ',"at":' .. string.format('%.3f', now_ms / 1000)
  .. '}'
redis.call('HINCRBY', KEYS[2], 'rejected_' .. ARGV[2], 1)
redis.call('LPUSH', KEYS[1], record)
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[4]) - 1)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]))
return redis.call('LLEN', KEYS[1])
