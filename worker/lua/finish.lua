-- finish.lua: record the outcome of a send attempt (or of an unknown one).
--
-- KEYS[1] batch record {ns}:batch:{id}  KEYS[2] inflight zset  KEYS[3] stats hash
-- KEYS[4] dead letters hash {ns}:dead  (dead-letter id -> record JSON)
-- KEYS[5] dead letter index zset {ns}:dead:index  (dead-letter id -> time ms)
-- KEYS[6] ready zset of the batch's key {ns}:ready:{batch_key}  KEYS[7] ready keys {ns}:ready
-- KEYS[8..] records of child batches (outcome split)
--
-- ARGV[1] now_ms  ARGV[2] batch id  ARGV[3] owner ('' = the caller holds no lease: only a
--         batch whose lease ran out in `sending` may then be finished)
-- ARGV[4] outcome: sent | retry | dead | split
-- ARGV[5] HTTP status ('' when none)  ARGV[6] detail text  ARGV[7] retention s
-- ARGV[8] when the reaper should look at the batch (retry) or its children (split), ms
-- ARGV[9] contacts sent (sent)  ARGV[10] 1 = a throttle: this attempt does not count
-- ARGV[11] retry: when the batch may be sent again, ms
-- ARGV[12] number of children c; then c child ids, then c contact JSON arrays;
-- then dead letters as (id, record JSON) pairs to the end
--
-- Returns 1 if recorded, 0 if the caller no longer owns the batch.
local now_ms = tonumber(ARGV[1])
local f = redis.call('HMGET', KEYS[1], 'state', 'owner', 'lease_until', 'key')
if ARGV[3] == '' then
  if f[1] ~= 'sending' or tonumber(f[3]) > now_ms then
    return 0
  end
elseif (f[1] ~= 'claimed' and f[1] ~= 'sending') or f[2] ~= ARGV[3] then
  return 0
end
local outcome = ARGV[4]
redis.call('HSET', KEYS[1], 'status', ARGV[5], 'detail', ARGV[6], 'updated_ms', now_ms)
redis.call('HDEL', KEYS[1], 'owner', 'lease_until')
if outcome == 'retry' then
  redis.call('HSET', KEYS[1], 'state', 'queued')
  if ARGV[10] == '1' then
    redis.call('HINCRBY', KEYS[1], 'attempts', -1)
    redis.call('HINCRBY', KEYS[1], 'throttled', 1)
  end
  redis.call('ZADD', KEYS[2], tonumber(ARGV[8]), ARGV[2])
  redis.call('ZADD', KEYS[6], tonumber(ARGV[11]), ARGV[2])
  redis.call('ZADD', KEYS[7], 'NX', 0, f[4])
  return 1
end
redis.call('HSET', KEYS[1], 'state', outcome)
redis.call('ZREM', KEYS[2], ARGV[2])
-- The contacts now live on only where they are needed (dead letters, child batches): a
-- finished record keeps its key, size, status and times, not a copy of every contact.
redis.call('HDEL', KEYS[1], 'contacts')
redis.call('EXPIRE', KEYS[1], ARGV[7])
if outcome == 'sent' then
  redis.call('HINCRBY', KEYS[3], 'batches_sent', 1)
  redis.call('HINCRBY', KEYS[3], 'contacts_sent', tonumber(ARGV[9]))
end
local children = tonumber(ARGV[12])
for i = 1, children do
  local child_id = ARGV[12 + i]
  local contacts = ARGV[12 + children + i]
  redis.call('HSET', KEYS[7 + i], 'key', f[4], 'state', 'cut', 'contacts', contacts,
             'size', #cjson.decode(contacts), 'trigger', 'split', 'parent', ARGV[2],
             'created_ms', now_ms, 'updated_ms', now_ms, 'attempts', 0)
  redis.call('ZADD', KEYS[2], tonumber(ARGV[8]), child_id)
  redis.call('ZADD', KEYS[6], now_ms, child_id)
  redis.call('ZADD', KEYS[7], 'NX', 0, f[4])
end
local dead = 0
for i = 13 + 2 * children, #ARGV, 2 do
  redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[5], now_ms, ARGV[i])
  dead = dead + 1
end
if dead > 0 then
  redis.call('HINCRBY', KEYS[3], 'contacts_dead', dead)
end
return 1
