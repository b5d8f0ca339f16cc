-- finish.lua: record the outcome of a send attempt (or of an attempt that died in flight).
--
-- KEYS[1] batch record {ns}:batch:{id}  KEYS[2] inflight zset  KEYS[3] stats hash
-- KEYS[4] gauges hash {ns}:gauges
-- KEYS[5] dead letters hash {ns}:dead  (dead-letter id -> record JSON)
-- KEYS[6] dead letter index zset {ns}:dead:index  (dead-letter id -> time ms)
-- KEYS[7] ready zset of the batch's own key {ns}:ready:{batch_key} (checked against the record)
-- KEYS[8] ready keys zset {ns}:ready
-- KEYS[9..8+c] records of child batches (outcome split)
-- KEYS[9+c..] calls zset {ns}:calls:{number} of each contact of the batch (see gates.lua)
--
-- ARGV[1] now_ms ('' = Redis TIME)  ARGV[2] batch id
-- ARGV[3] owner ('' = the caller holds no lease: only a batch whose lease ran out in `sending`
--         may then be finished)
-- ARGV[4] outcome: sent | retry | dead | split
-- ARGV[5] HTTP status ('' when none)  ARGV[6] detail text  ARGV[7] retention of the record, s
-- ARGV[8] outbox grace ms (children: when the reaper looks at them if their tokens are lost)
-- ARGV[9] retry: ms from now until the batch may be sent again
-- ARGV[10] sent: contacts sent  ARGV[11] retry: 1 = a throttle, this attempt does not count
-- ARGV[12] key prefix "{ns}:" (to check KEYS[7])
-- ARGV[13] template ("default" for none)  ARGV[14] 1 = Levers surely did not call these
-- numbers (a retry, a refusal): forget the calls begin.lua recorded, so caps do not count them
-- ARGV[15] number of children c; then c child ids, then c contact JSON arrays;
-- then dead letters as (id, record JSON) pairs to the end; each record gets "at" (s, the
-- shared clock) added here.
--
-- Returns 1 if recorded, 0 if the caller no longer owns the batch.
--
-- An owner is one attempt (a fresh id), and the record keeps the owner of the last outcome
-- recorded (`finished_by`). The same owner's finish again is this call run a second time
-- (its reply lost, redis-py retrying): it answers 1 as the first run did, and records
-- nothing twice. Answered 0, the caller would take it for a lost lease, and a split's
-- children would get no token until the reaper's grace ran out.
local now_ms = clock_ms(ARGV[1])
local f = redis.call('HMGET', KEYS[1], 'state', 'owner', 'lease_until', 'key', 'finished_by')
if ARGV[3] ~= '' and f[2] ~= ARGV[3] and f[5] == ARGV[3] then
  return 1
end
if ARGV[3] == '' then
  if f[1] ~= 'sending' or tonumber(f[3]) > now_ms then
    return 0
  end
elseif (f[1] ~= 'claimed' and f[1] ~= 'sending') or f[2] ~= ARGV[3] then
  return 0
end
if KEYS[7] ~= ARGV[12] .. 'ready:' .. f[4] then
  return redis.error_reply('finish.lua: KEYS[7] is not the ready set of batch key ' .. f[4])
end
local outcome = ARGV[4]
local children = tonumber(ARGV[15])
if ARGV[14] == '1' then
  for i = 9 + children, #KEYS do
    redis.call('ZREM', KEYS[i], call_member(ARGV[13], ARGV[2]))
  end
end
redis.call('HSET', KEYS[1], 'status', ARGV[5], 'detail', ARGV[6], 'updated_ms', now_ms)
redis.call('HDEL', KEYS[1], 'owner', 'lease_until')
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'finished_by', ARGV[3])
end
if outcome == 'retry' then
  move_state(KEYS[1], KEYS[4], 'queued')
  if ARGV[11] == '1' then
    redis.call('HINCRBY', KEYS[1], 'attempts', -1)
    redis.call('HINCRBY', KEYS[1], 'throttled', 1)
  end
  -- Due again at retry_at: ready for a token then, and the reaper hands it one then. No
  -- delayed message holds the retry, so nothing but this record decides when it happens.
  local retry_at = now_ms + tonumber(ARGV[9])
  redis.call('HSET', KEYS[1], 'retry_at_ms', retry_at)
  redis.call('ZADD', KEYS[2], retry_at, ARGV[2])
  redis.call('ZADD', KEYS[7], retry_at, ARGV[2])
  redis.call('ZADD', KEYS[8], 'NX', 0, f[4])
  return 1
end
move_state(KEYS[1], KEYS[4], outcome)
redis.call('ZREM', KEYS[2], ARGV[2])
-- The contacts now live on only where they are needed (dead letters, child batches): a
-- finished record keeps its key, size, status and times, not a copy of every contact.
redis.call('HDEL', KEYS[1], 'contacts')
redis.call('EXPIRE', KEYS[1], ARGV[7])
if outcome == 'sent' then
  redis.call('HINCRBY', KEYS[3], 'batches_sent', 1)
  redis.call('HINCRBY', KEYS[3], 'contacts_sent', tonumber(ARGV[10]))
end
for i = 1, children do
  local child_id = ARGV[15 + i]
  local contacts = ARGV[15 + children + i]
  local record = KEYS[8 + i]
  redis.call('HSET', record, 'key', f[4], 'contacts', contacts,
             'size', #cjson.decode(contacts), 'trigger', 'split', 'parent', ARGV[2],
             'created_ms', now_ms, 'updated_ms', now_ms, 'attempts', 0)
  move_state(record, KEYS[4], 'cut')
  redis.call('ZADD', KEYS[2], now_ms + tonumber(ARGV[8]), child_id)
  redis.call('ZADD', KEYS[7], now_ms, child_id)
  redis.call('ZADD', KEYS[8], 'NX', 0, f[4])
end
local dead = 0
local at = string.format('%.3f', now_ms / 1000)
for i = 16 + 2 * children, #ARGV, 2 do
  local letter = string.sub(ARGV[i + 1], 1, -2) .. ',"at":' .. at .. '}'
  redis.call('HSET', KEYS[5], ARGV[i], letter)
  redis.call('ZADD', KEYS[6], now_ms, ARGV[i])
  dead = dead + 1
end
if dead > 0 then
  redis.call('HINCRBY', KEYS[3], 'contacts_dead', dead)
end
return 1
