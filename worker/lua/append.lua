-- append.lua: add one validated contact to the open batch of its batch key; cut by size.
--
-- KEYS[1] pending hash     {ns}:pending:{batch_key}   E.164 -> stored contact JSON
-- KEYS[2] order zset       {ns}:order:{batch_key}     E.164 -> append time (ms)
-- KEYS[3] deadlines zset   {ns}:deadlines             batch_key -> cut-by time (ms)
-- KEYS[4] batch record     {ns}:batch:{batch_id}      written only if this append cuts
-- KEYS[5] inflight zset    {ns}:inflight
-- KEYS[6] stats hash       {ns}:stats
-- KEYS[7] message marker   {ns}:msg:{message_id}      (used only when dedupe is off)
-- KEYS[8] dedupe marker    {ns}:dedupe:{batch_key}:{token}
-- KEYS[9] ready zset       {ns}:ready:{batch_key}     batch id -> when it may be sent (ms)
-- KEYS[10] ready keys zset {ns}:ready                 batch key -> when last served (ms)
--
-- ARGV[1] now_ms  ARGV[2] batch_key  ARGV[3] E.164 number  ARGV[4] stored contact JSON
-- ARGV[5] message id  ARGV[6] max_size  ARGV[7] max_wait_ms  ARGV[8] dedupe ttl s (0 = off)
-- ARGV[9] message marker ttl s  ARGV[10] batch id to use if this append cuts
-- ARGV[11] requeue_ms (outbox grace)
--
-- Returns {status, cut_size}: status is appended | merged | duplicate | redelivered;
-- cut_size > 0 when the append filled the batch and it was cut as ARGV[10].
local now_ms = tonumber(ARGV[1])
local batch_key = ARGV[2]
local number = ARGV[3]
local max_size = tonumber(ARGV[6])
local max_wait_ms = tonumber(ARGV[7])
local dedupe_ttl = tonumber(ARGV[8])

-- A redelivered message (its worker died after appending, before the ack) changes nothing.
-- With dedupe on, the dedupe marker holds the id of the message that was appended, so it is
-- the redelivery marker too (one key per contact instead of two); with dedupe off, a marker
-- per message does that job.
local holder = nil
if dedupe_ttl > 0 then
  holder = redis.call('GET', KEYS[8])
  if holder == ARGV[5] then
    return {'redelivered', 0}
  end
elseif redis.call('EXISTS', KEYS[7]) == 1 then
  return {'redelivered', 0}
end

local status
if redis.call('HEXISTS', KEYS[1], number) == 1 then
  -- Same number already waiting in this batch: one entry, the later fields win, the
  -- original arrival time (and so the deadline) stays. A redelivery merges the same fields.
  redis.call('HSET', KEYS[1], number, ARGV[4])
  status = 'merged'
elseif holder then
  redis.call('HINCRBY', KEYS[6], 'contacts_duplicate', 1)
  return {'duplicate', 0}
else
  redis.call('HSET', KEYS[1], number, ARGV[4])
  redis.call('ZADD', KEYS[2], now_ms, number)
  redis.call('ZADD', KEYS[3], 'NX', now_ms + max_wait_ms, batch_key)
  if dedupe_ttl > 0 then
    redis.call('SET', KEYS[8], ARGV[5], 'EX', dedupe_ttl)
  end
  status = 'appended'
end
if dedupe_ttl == 0 then
  redis.call('SET', KEYS[7], status, 'EX', ARGV[9])
end
redis.call('HINCRBY', KEYS[6], 'contacts_' .. status, 1)

local cut_size = 0
if redis.call('ZCARD', KEYS[2]) >= max_size then
  cut_size = cut(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[9], KEYS[10],
                 batch_key, ARGV[10], now_ms, max_size, max_wait_ms, tonumber(ARGV[11]), 'size')
end
return {status, cut_size}
