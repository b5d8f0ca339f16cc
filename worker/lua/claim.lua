-- claim.lua: take a batch for one send attempt, under a lease.
--
-- KEYS[1] batch record {ns}:batch:{id}   KEYS[2] inflight zset {ns}:inflight
-- ARGV[1] now_ms  ARGV[2] batch id  ARGV[3] lease_ms  ARGV[4] owner (attempt token)
-- ARGV[5] 1 to claim a batch whose previous attempt's outcome is unknown, else 0
--
-- States: cut -> queued -> claimed -> sending -> sent | dead | split
-- `claimed` means an attempt owns the batch but has not started its request (it may be waiting
-- for the pacer); `sending` (set by begin.lua right before the request) means the request may
-- have reached Levers. Only a lease that runs out in `sending` is an unknown outcome.
--
-- Returns {verdict, batch_key, contacts_json, attempts, first_attempt_ms}; verdict is
--   claimed  the caller owns the batch until now + lease_ms and must finish it
--   unknown  a previous attempt died in `sending`: not claimed (unless ARGV[5] = 1)
--   busy     another live attempt holds the lease
--   sent | dead | split | missing   nothing to do
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  redis.call('ZREM', KEYS[2], ARGV[2])
  return {'missing', '', '', 0, 0}
end
if state == 'sent' or state == 'dead' or state == 'split' then
  return {state, '', '', 0, 0}
end
local now_ms = tonumber(ARGV[1])
local f = redis.call('HMGET', KEYS[1], 'key', 'contacts', 'attempts', 'lease_until',
                    'first_attempt_ms')
if state == 'claimed' or state == 'sending' then
  if tonumber(f[4]) > now_ms then
    return {'busy', '', '', 0, 0}
  end
  if state == 'sending' and ARGV[5] ~= '1' then
    return {'unknown', f[1], f[2], tonumber(f[3]), tonumber(f[5] or now_ms)}
  end
end
local lease_until = now_ms + tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'state', 'claimed', 'owner', ARGV[4], 'lease_until', lease_until,
           'updated_ms', now_ms)
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSETNX', KEYS[1], 'first_attempt_ms', now_ms)
redis.call('ZADD', KEYS[2], lease_until, ARGV[2])
return {'claimed', f[1], f[2], attempts, tonumber(f[5] or now_ms)}
