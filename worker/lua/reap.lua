-- reap.lua: look at one batch whose inflight time has come (see keys.py: inflight).
--
-- KEYS[1] batch record {ns}:batch:{id}   KEYS[2] inflight zset {ns}:inflight
-- KEYS[3] ready keys zset {ns}:ready     KEYS[4] ready zset of the batch's key (the caller
-- read the record's key; checked here against ARGV[4])   KEYS[5] gauges hash {ns}:gauges
-- ARGV[1] now_ms ('' = Redis TIME)  ARGV[2] batch id  ARGV[3] requeue_ms  ARGV[4] prefix "{ns}:"
-- ARGV[5] this look's id (fresh for each call of the caller's)
--
-- Returns the action for the caller:
--   send     enqueue a send message (a token) naming it: its message was lost, its retry is
--            due, it waited long, or its attempt's lease ran out (in `claimed`: it is made
--            ready again; in `sending`: the token's pick sees the unknown outcome)
--   skip     not due any more (another worker got there first), or already finished
--
-- A look answered `send` leaves its id on the record: the same call run again (its reply
-- lost, redis-py retrying) finds the batch not due for requeue_ms and would answer `skip`,
-- and the batch would wait that long (300 s) for a token. It answers `send` again instead;
-- another worker's look at the same moment has another id and still skips.
if redis.call('HGET', KEYS[1], 'reaped_by') == ARGV[5] then
  return 'send'
end
local now_ms = clock_ms(ARGV[1])
local due = redis.call('ZSCORE', KEYS[2], ARGV[2])
if not due or tonumber(due) > now_ms then
  return 'skip'
end
local f = redis.call('HMGET', KEYS[1], 'state', 'key')
local state = f[1]
if not state or state == 'sent' or state == 'dead' or state == 'split' or
   state == 'held' then
  redis.call('ZREM', KEYS[2], ARGV[2])
  return 'skip'
end
if KEYS[4] ~= ARGV[4] .. 'ready:' .. f[2] then
  return redis.error_reply('reap.lua: KEYS[4] is not the ready set of batch key ' .. f[2])
end
if state == 'cut' then
  move_state(KEYS[1], KEYS[5], 'queued')
  redis.call('HSET', KEYS[1], 'updated_ms', now_ms)
end
if state ~= 'sending' then
  redis.call('ZADD', KEYS[4], 'NX', now_ms, ARGV[2])
  redis.call('ZADD', KEYS[3], 'NX', 0, f[2])
end
-- Look again after requeue_ms in case this message is lost too.
redis.call('ZADD', KEYS[2], now_ms + tonumber(ARGV[3]), ARGV[2])
redis.call('HSET', KEYS[1], 'reaped_by', ARGV[5])
return 'send'
