-- reap.lua: look at one batch whose inflight time has come (see keys.py: inflight).
--
-- KEYS[1] batch record {ns}:batch:{id}   KEYS[2] inflight zset {ns}:inflight
-- ARGV[1] now_ms  ARGV[2] batch id  ARGV[3] requeue_ms
--
-- Returns the action for the caller:
--   send     enqueue a send message for it (its message was lost, or the batch waited long,
--            or its attempt's lease ran out: the send actor then sees the unknown outcome)
--   skip     not due any more (another worker got there first), or already finished
local now_ms = tonumber(ARGV[1])
local due = redis.call('ZSCORE', KEYS[2], ARGV[2])
if not due or tonumber(due) > now_ms then
  return 'skip'
end
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state == 'sent' or state == 'dead' then
  redis.call('ZREM', KEYS[2], ARGV[2])
  return 'skip'
end
if state == 'cut' then
  redis.call('HSET', KEYS[1], 'state', 'queued', 'updated_ms', now_ms)
end
-- Look again after requeue_ms in case this message is lost too.
redis.call('ZADD', KEYS[2], now_ms + tonumber(ARGV[3]), ARGV[2])
return 'send'
