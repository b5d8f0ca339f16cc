-- append.lua: add one validated contact to the open batch of its batch key; cut by size.
--
-- KEYS[1] pending hash     {ns}:pending:{batch_key}   E.164 -> stored contact JSON
-- KEYS[2] order zset       {ns}:order:{batch_key}     E.164 -> append time (ms)
-- KEYS[3] deadlines zset   {ns}:deadlines             batch_key -> cut-by time (ms)
-- KEYS[4] stats hash       {ns}:stats
-- KEYS[5] gauges hash      {ns}:gauges                (see states.lua; `pending` here)
-- KEYS[6] dedupe marker    {ns}:dedupe:{batch_key}:{token}   (token: number or dedupe key)
-- KEYS[7] message marker   {ns}:msg:{contact_id}
-- KEYS[8] batch record     {ns}:batch:{batch_id}      written only if this append cuts
-- KEYS[9] inflight zset    {ns}:inflight
-- KEYS[10] ready zset      {ns}:ready:{batch_key}
-- KEYS[11] ready keys zset {ns}:ready
--
-- ARGV[1] now_ms ('' = Redis TIME)  ARGV[2] batch_key  ARGV[3] E.164 number
-- ARGV[4] the contact as Levers takes it (JSON)  ARGV[5] contact id (stable across dramatiq
-- redeliveries)  ARGV[6] max_size  ARGV[7] max_wait_ms  ARGV[8] dedupe window s (0 = off)
-- ARGV[9] message marker ttl s (dedupe off)  ARGV[10] batch id to use if this append cuts
-- ARGV[11] outbox grace ms
--
-- Returns {status, cut_size}: status is appended | merged | duplicate | redelivered;
-- cut_size > 0 when the append filled the batch and it was cut as ARGV[10].
--
-- Redelivery rule: every status leaves what makes a second delivery of the same contact id a
-- no-op (`redelivered`), before and after the cut:
--   appended   the dedupe marker holds this contact id (one key per contact, the common case);
--   merged     the token's marker is taken if free (a later contact with the same dedupe key
--              is a duplicate), and a message marker records this contact id;
--   duplicate  a message marker records this contact id;
--   dedupe off a message marker for every status.
local now_ms = clock_ms(ARGV[1])
local batch_key = ARGV[2]
local number = ARGV[3]
local contact_id = ARGV[5]
local max_size = tonumber(ARGV[6])
local max_wait_ms = tonumber(ARGV[7])
local dedupe_ttl = tonumber(ARGV[8])

local holder = nil
if dedupe_ttl > 0 then
  holder = redis.call('GET', KEYS[6])
  if holder == contact_id then
    return {'redelivered', 0}
  end
end
if redis.call('EXISTS', KEYS[7]) == 1 then
  return {'redelivered', 0}
end

local marker_ttl = dedupe_ttl > 0 and dedupe_ttl or tonumber(ARGV[9])
local stored = '[' .. cjson.encode(contact_id) .. ',' .. ARGV[4] .. ',' .. now_ms .. ']'
local status
if redis.call('HEXISTS', KEYS[1], number) == 1 then
  -- Same number already waiting in this batch: one entry, the later fields win, the
  -- original arrival time (and so the deadline) stays.
  redis.call('HSET', KEYS[1], number, stored)
  if dedupe_ttl > 0 and not holder then
    redis.call('SET', KEYS[6], contact_id, 'EX', dedupe_ttl)
  end
  redis.call('SET', KEYS[7], 'merged', 'EX', marker_ttl)
  status = 'merged'
elseif holder then
  redis.call('SET', KEYS[7], 'duplicate', 'EX', marker_ttl)
  redis.call('HINCRBY', KEYS[4], 'contacts_duplicate', 1)
  return {'duplicate', 0}
else
  redis.call('HSET', KEYS[1], number, stored)
  redis.call('ZADD', KEYS[2], now_ms, number)
  redis.call('ZADD', KEYS[3], 'NX', now_ms + max_wait_ms, batch_key)
  redis.call('HINCRBY', KEYS[5], 'pending', 1)
  if dedupe_ttl > 0 then
    redis.call('SET', KEYS[6], contact_id, 'EX', dedupe_ttl)
  else
    redis.call('SET', KEYS[7], 'appended', 'EX', marker_ttl)
  end
  status = 'appended'
end
redis.call('HINCRBY', KEYS[4], 'contacts_' .. status, 1)

local cut_size = 0
if redis.call('ZCARD', KEYS[2]) >= max_size then
  cut_size = cut(KEYS[1], KEYS[2], KEYS[3], KEYS[8], KEYS[9], KEYS[4], KEYS[5], KEYS[10],
                 KEYS[11], batch_key, ARGV[10], now_ms, max_size, max_wait_ms, tonumber(ARGV[11]),
                 'size')
end
return {status, cut_size}
