-- Shared by the scripts that move a batch between states (prepended when registered).
--
-- move_state(record, gauges, to)
--
-- Sets the batch's `state` and keeps the gauges hash {ns}:gauges exact, so that status and
-- every metrics scrape read a few counters instead of every batch in flight:
--   batches:<state>   batches in that state      contacts:<state>   their contacts
-- for the in-flight states cut, queued, claimed and sending. A finished state (sent, dead,
-- split) is counted only as leaving its previous state. A new record (no state yet) must
-- have its `size` set before it is moved.
local IN_FLIGHT = {cut = true, queued = true, claimed = true, sending = true}

local function move_state(record, gauges, to)
  local f = redis.call('HMGET', record, 'state', 'size')
  local from, size = f[1], tonumber(f[2]) or 0
  if from == to then
    return
  end
  if from and IN_FLIGHT[from] then
    redis.call('HINCRBY', gauges, 'batches:' .. from, -1)
    redis.call('HINCRBY', gauges, 'contacts:' .. from, 0 - size)  -- never -0, which Redis refuses
  end
  if IN_FLIGHT[to] then
    redis.call('HINCRBY', gauges, 'batches:' .. to, 1)
    redis.call('HINCRBY', gauges, 'contacts:' .. to, size)
  end
  redis.call('HSET', record, 'state', to)
end
