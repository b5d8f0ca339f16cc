-- append.lua: add one validated contact to its batch key: to the open batch (cut by size),
-- to the holds (its calling window or not_before is not open yet), or to the dead letters
-- (its expire_at has passed, or its template was cancelled while it waited in the queue). Layout of pending and held entries: see entries.lua.
--
-- KEYS[1] pending hash     {ns}:pending:{batch_key}
-- KEYS[2] order zset       {ns}:order:{batch_key}
-- KEYS[3] deadlines zset   {ns}:deadlines
-- KEYS[4] stats hash       {ns}:stats
-- KEYS[5] gauges hash      {ns}:gauges
-- KEYS[6] dedupe marker    {ns}:dedupe:{batch_key}:{token}   (token: number or dedupe key)
-- KEYS[7] message marker   {ns}:msg:{contact_id}
-- KEYS[8] batch record     {ns}:batch:{batch_id}      written only if this append cuts
-- KEYS[9] inflight zset    {ns}:inflight
-- KEYS[10] ready zset      {ns}:ready:{batch_key}
-- KEYS[11] ready keys zset {ns}:ready
-- KEYS[12] held hash       {ns}:held:{batch_key}
-- KEYS[13] release zset    {ns}:release:{batch_key}
-- KEYS[14] releases zset   {ns}:releases
-- KEYS[15] since zset      {ns}:held:since
-- KEYS[16] dead letters hash {ns}:dead   KEYS[17] dead letter index zset {ns}:dead:index
--
-- ARGV[1] now_ms ('' = Redis TIME)  ARGV[2] batch_key  ARGV[3] E.164 number
-- ARGV[4] the contact as Levers takes it (JSON)  ARGV[5] contact id (stable across dramatiq
-- redeliveries)  ARGV[6] max_size  ARGV[7] max_wait_ms  ARGV[8] dedupe window s (0 = off)
-- ARGV[9] message marker ttl s (dedupe off)  ARGV[10] batch id to use if this append cuts
-- ARGV[11] outbox grace ms
-- ARGV[12] where it goes now: send | hold | drop (the dead letters: expired, cancelled)
-- ARGV[13] hold: release ms (-1: not known)  ARGV[14] hold or drop: the reason
-- ARGV[15] expire_at ms (0: none)  ARGV[16] schedule JSON ('' none: time_zone, not_before,
-- expire_at as the sender re-checks them)
--
-- Returns {status, cut_size}: status is appended | merged | duplicate | redelivered;
-- cut_size > 0 when the append filled the batch and it was cut as ARGV[10].
--
-- Redelivery rule: every status leaves what makes a second delivery of the same contact id a
-- no-op (`redelivered`), before and after the cut, held or not:
--   appended   the dedupe marker holds this contact id (one key per contact, the common case);
--   merged     the token's marker is taken if free (a later contact with the same dedupe key
--              is a duplicate), and a message marker records this contact id;
--   duplicate  a message marker records this contact id;
--   dedupe off a message marker for every status.
-- The same call run again (its reply lost, redis-py retrying) is a redelivery too, except
-- after a cut: ARGV[10] then names a record, and the caller needs the same answer to queue
-- the batch's send token at once rather than leave it to the reaper's grace. The message
-- marker holds the status when there is one (merged, or dedupe off); otherwise it was
-- appended (a duplicate never cuts).
if redis.call('EXISTS', KEYS[8]) == 1 then
  return {redis.call('GET', KEYS[7]) or 'appended', cut_size_of(KEYS[8]) or 0}
end
local now_ms = clock_ms(ARGV[1])
local batch_key = ARGV[2]
local number = ARGV[3]
local contact_id = ARGV[5]
local max_size = tonumber(ARGV[6])
local max_wait_ms = tonumber(ARGV[7])
local dedupe_ttl = tonumber(ARGV[8])
local verdict = ARGV[12]

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
local in_pending = redis.call('HEXISTS', KEYS[1], number) == 1
local in_held = redis.call('HEXISTS', KEYS[12], number) == 1
local status
if in_pending or in_held then
  -- Same number already waiting in this batch key: one entry, this message's fields and
  -- schedule win; a pending entry staying pending keeps its place and deadline.
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
  if dedupe_ttl > 0 then
    redis.call('SET', KEYS[6], contact_id, 'EX', dedupe_ttl)
  else
    redis.call('SET', KEYS[7], 'appended', 'EX', marker_ttl)
  end
  status = 'appended'
end
redis.call('HINCRBY', KEYS[4], 'contacts_' .. status, 1)

local id_json = cjson.encode(contact_id)
if in_held then
  remove_held(KEYS[12], KEYS[13], KEYS[14], KEYS[15], KEYS[5], batch_key, number)
end
if verdict == 'send' then
  local schedule = ARGV[16] ~= '' and (',' .. ARGV[16]) or ''
  local stored = '[' .. id_json .. ',' .. ARGV[4] .. ',' .. now_ms .. schedule .. ']'
  if in_pending then
    redis.call('HSET', KEYS[1], number, stored)
  else
    add_pending(KEYS[1], KEYS[2], KEYS[3], KEYS[5], batch_key, number, stored, now_ms,
                max_wait_ms)
  end
else
  if in_pending then
    remove_pending(KEYS[1], KEYS[2], KEYS[3], KEYS[5], batch_key, number, max_wait_ms)
  end
  local parts = {id_json, ARGV[4], now_ms, ARGV[16], ARGV[14], ARGV[15]}
  if verdict == 'hold' then
    add_held(KEYS[12], KEYS[13], KEYS[14], KEYS[15], KEYS[5], batch_key, number, parts,
             tonumber(ARGV[13]))
  else
    local detail = ARGV[14] == 'expired' and 'expire_at had passed when it was accepted'
      or 'its template was cancelled while it waited in the queue'
    drop_letter(KEYS[16], KEYS[17], KEYS[4], batch_key, parts, now_ms, ARGV[14], detail)
  end
  return {status, 0}
end

local cut_size = 0
if redis.call('ZCARD', KEYS[2]) >= max_size then
  cut_size = cut(KEYS[1], KEYS[2], KEYS[3], KEYS[8], KEYS[9], KEYS[4], KEYS[5], KEYS[10],
                 KEYS[11], batch_key, ARGV[10], now_ms, max_size, max_wait_ms, tonumber(ARGV[11]),
                 'size')
end
return {status, cut_size}
