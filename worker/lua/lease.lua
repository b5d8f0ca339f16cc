-- Shared by pick.lua (prepended when registered, after clock.lua and states.lua).
--
-- try_claim(record, inflight, gauges, batch_id, now_ms, lease_ms, owner, resend_unknown)
--
-- States: cut -> queued -> claimed -> sending -> sent | dead | split
--                           claimed -> held (begin.lua took every contact out)
-- `claimed` means an attempt owns the batch but has not started its request (it may be waiting
-- for the pacer); `sending` (set by begin.lua right before the request) means the request may
-- have reached Levers. Only a lease that runs out in `sending` is an unknown outcome.
--
-- Returns {verdict, batch_key, contacts_json, attempts, first_attempt_ms, now_ms}; verdict is
--   claimed  the caller owns the batch until now + lease_ms and must finish it
--   unknown  a previous attempt died in `sending`: not claimed (unless resend_unknown = '1')
--   busy     another live attempt holds the lease
--   sent | dead | split | held | missing   nothing to do
local function try_claim(record, inflight, gauges, batch_id, now_ms, lease_ms, owner,
                         resend_unknown)
  local state = redis.call('HGET', record, 'state')
  if not state then
    redis.call('ZREM', inflight, batch_id)
    return {'missing', '', '', 0, 0, now_ms}
  end
  if state == 'sent' or state == 'dead' or state == 'split' or state == 'held' then
    return {state, '', '', 0, 0, now_ms}
  end
  local f = redis.call('HMGET', record, 'key', 'contacts', 'attempts', 'lease_until',
                      'first_attempt_ms')
  if state == 'claimed' or state == 'sending' then
    if tonumber(f[4]) > now_ms then
      return {'busy', '', '', 0, 0, now_ms}
    end
    if state == 'sending' and resend_unknown ~= '1' then
      return {'unknown', f[1], f[2], tonumber(f[3]), tonumber(f[5] or now_ms), now_ms}
    end
  end
  local lease_until = now_ms + lease_ms
  move_state(record, gauges, 'claimed')
  redis.call('HSET', record, 'owner', owner, 'lease_until', lease_until, 'updated_ms', now_ms)
  local attempts = redis.call('HINCRBY', record, 'attempts', 1)
  redis.call('HSETNX', record, 'first_attempt_ms', now_ms)
  redis.call('ZADD', inflight, lease_until, batch_id)
  return {'claimed', f[1], f[2], attempts, tonumber(f[5] or now_ms), now_ms}
end
