-- finish.lua: record the outcome of a send attempt (or of an unknown one).
--
-- KEYS[1] batch record {ns}:batch:{id}  KEYS[2] inflight zset  KEYS[3] stats hash
-- KEYS[4] dead letters hash {ns}:dead  (dead-letter id -> record JSON)
-- KEYS[5] dead letter index zset {ns}:dead:index  (dead-letter id -> time ms)
--
-- ARGV[1] now_ms  ARGV[2] batch id  ARGV[3] owner ('' = the caller holds no lease: only
--         a batch whose lease is over may then be finished)
-- ARGV[4] outcome: sent | retry | dead
-- ARGV[5] HTTP status ('' when none)  ARGV[6] detail text  ARGV[7] retention s
-- ARGV[8] retry: when the reaper should look if the retry message is lost (ms)
-- ARGV[9] number of contacts sent (for sent) ; ARGV[10..] dead letters as id, JSON pairs
--
-- Returns 1 if recorded, 0 if the caller no longer owns the batch.
local now_ms = tonumber(ARGV[1])
local fields = redis.call('HMGET', KEYS[1], 'state', 'owner', 'lease_until', 'size')
if fields[1] ~= 'sending' then
  return 0
end
if ARGV[3] == '' then
  if tonumber(fields[3]) > now_ms then
    return 0
  end
elseif fields[2] ~= ARGV[3] then
  return 0
end
local outcome = ARGV[4]
redis.call('HSET', KEYS[1], 'status', ARGV[5], 'detail', ARGV[6], 'updated_ms', now_ms)
redis.call('HDEL', KEYS[1], 'owner', 'lease_until')
if outcome == 'retry' then
  redis.call('HSET', KEYS[1], 'state', 'queued')
  redis.call('ZADD', KEYS[2], tonumber(ARGV[8]), ARGV[2])
  return 1
end
redis.call('HSET', KEYS[1], 'state', outcome)
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[7])
if outcome == 'sent' then
  redis.call('HINCRBY', KEYS[3], 'batches_sent', 1)
  redis.call('HINCRBY', KEYS[3], 'contacts_sent', tonumber(ARGV[9]))
end
local dead = 0
for i = 10, #ARGV, 2 do
  redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[5], now_ms, ARGV[i])
  dead = dead + 1
end
if dead > 0 then
  redis.call('HINCRBY', KEYS[3], 'contacts_dead', dead)
end
return 1
