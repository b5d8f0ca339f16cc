-- claim.lua: take a batch for one send attempt, under a lease.
--
-- KEYS[1] batch record {ns}:batch:{id}   KEYS[2] inflight zset {ns}:inflight
-- ARGV[1] now_ms  ARGV[2] batch id  ARGV[3] lease_ms  ARGV[4] owner (attempt token)
-- ARGV[5] 1 to claim a batch whose previous attempt's outcome is unknown, else 0
--
-- Returns {verdict, batch_key, contacts_json, attempts}; verdict is
--   claimed  the caller owns the batch until now + lease_ms and must finish it
--   unknown  a previous attempt died in `sending` (lease over): its request may have reached
--            Levers, so it is not claimed (unless ARGV[5] = 1, then `claimed`)
--   busy     another live attempt holds the lease
--   sent | dead | missing   nothing to do
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  redis.call('ZREM', KEYS[2], ARGV[2])
  return {'missing', '', '', 0}
end
if state == 'sent' or state == 'dead' then
  return {state, '', '', 0}
end
local now_ms = tonumber(ARGV[1])
local fields = redis.call('HMGET', KEYS[1], 'key', 'contacts', 'attempts', 'lease_until')
if state == 'sending' then
  if tonumber(fields[4]) > now_ms then
    return {'busy', '', '', 0}
  end
  if ARGV[5] ~= '1' then
    return {'unknown', fields[1], fields[2], tonumber(fields[3])}
  end
end
local lease_until = now_ms + tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'state', 'sending', 'owner', ARGV[4], 'lease_until', lease_until,
           'updated_ms', now_ms)
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('ZADD', KEYS[2], lease_until, ARGV[2])
return {'claimed', fields[1], fields[2], attempts}
