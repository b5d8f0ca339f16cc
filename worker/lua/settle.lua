-- settle.lua: a contact message has been handled (its contacts appended or rejected): take
-- its contacts off the `queued` gauge, once, whoever handles it and however often.
--
-- KEYS[1] queued messages hash {ns}:queued   message id -> contacts it carries
-- KEYS[2] gauges hash {ns}:gauges
-- ARGV[1] now_ms (unused; every script takes the clock argument first)  ARGV[2] message id
--
-- Returns the contacts taken off (0 for a message already settled, or one that a producer
-- enqueued without counting it: the gauge counts only what was counted in).
local n = redis.call('HGET', KEYS[1], ARGV[2])
if not n then
  return 0
end
redis.call('HDEL', KEYS[1], ARGV[2])
redis.call('HINCRBY', KEYS[2], 'queued', -tonumber(n))
return tonumber(n)
