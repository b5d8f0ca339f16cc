-- reap.lua: look at one batch whose inflight time has come (see keys.py: inflight).
--
-- KEYS[1] batch record {ns}:batch:{id}   KEYS[2] inflight zset {ns}:inflight
-- KEYS[3] ready keys zset {ns}:ready
-- ARGV[1] now_ms  ARGV[2] batch id  ARGV[3] requeue_ms  ARGV[4] key prefix "{ns}:"
--
-- Builds {ns}:ready:{batch key} from ARGV[4] and the record's key (see pick.lua).
--
-- Returns the action for the caller:
--   send     enqueue a send message (a token) naming it: its message was lost, it waited long,
--            or its attempt's lease ran out (in `claimed`: it is made ready again; in
--            `sending`: the token's pick sees the unknown outcome)
--   skip     not due any more (another worker got there first), or already finished
local now_ms = tonumber(ARGV[1])
local due = redis.call('ZSCORE', KEYS[2], ARGV[2])
if not due or tonumber(due) > now_ms then
  return 'skip'
end
local f = redis.call('HMGET', KEYS[1], 'state', 'key')
local state = f[1]
if not state or state == 'sent' or state == 'dead' or state == 'split' then
  redis.call('ZREM', KEYS[2], ARGV[2])
  return 'skip'
end
if state == 'cut' then
  redis.call('HSET', KEYS[1], 'state', 'queued', 'updated_ms', now_ms)
end
if state ~= 'sending' then
  redis.call('ZADD', ARGV[4] .. 'ready:' .. f[2], 'NX', now_ms, ARGV[2])
  redis.call('ZADD', KEYS[3], 'NX', 0, f[2])
end
-- Look again after requeue_ms in case this message is lost too.
redis.call('ZADD', KEYS[2], now_ms + tonumber(ARGV[3]), ARGV[2])
return 'send'
