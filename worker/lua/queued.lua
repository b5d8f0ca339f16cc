-- queued.lua: record that a cut batch's send message is on the queue.
--
-- KEYS[1] batch record {ns}:batch:{id}   KEYS[2] inflight zset {ns}:inflight
-- KEYS[3] gauges hash {ns}:gauges
-- ARGV[1] now_ms ('' = Redis TIME)  ARGV[2] batch id  ARGV[3] requeue_ms (when the reaper
-- looks again, in case this message is lost)
--
-- Returns 1 if the batch moved cut -> queued, 0 if it was already further along.
if redis.call('HGET', KEYS[1], 'state') ~= 'cut' then
  return 0
end
local now_ms = clock_ms(ARGV[1])
move_state(KEYS[1], KEYS[3], 'queued')
redis.call('HSET', KEYS[1], 'updated_ms', now_ms)
redis.call('ZADD', KEYS[2], now_ms + tonumber(ARGV[3]), ARGV[2])
return 1
