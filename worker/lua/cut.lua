-- Shared by append.lua, cut_due.lua and release.lua (prepended to each when registered,
-- after clock.lua and states.lua).
--
-- cut_size_of(record): the size of a batch already cut, or nil.
--
-- cut(pending, order, deadlines, record, inflight, stats, gauges, ready, ready_keys,
--     batch_key, batch_id, now_ms, max_size, max_wait_ms, grace_ms, trigger)
--
-- Moves the oldest `max_size` contacts of one batch key out of its pending hash into a new
-- batch record in state "cut", adds the batch to the inflight outbox (due for a reaper look
-- at now + grace_ms, in case its send message never reaches the queue) and to its key's
-- ready set (see pick.lua), and moves or clears the key's deadline.
-- Returns the number of contacts cut (0 when the buffer was empty).
--
-- A batch id names one cut only. If its record exists, this is the same script call run
-- again (its reply was lost and redis-py sent it once more): the first run's cut stands, and
-- its size is returned without touching the buffer. Cutting again would write the next
-- contacts over the first run's record, and those would never be sent.
local function cut_size_of(record)
  return tonumber(redis.call('HGET', record, 'size'))
end

local function cut(pending, order, deadlines, record, inflight, stats, gauges, ready, ready_keys,
                   batch_key, batch_id, now_ms, max_size, max_wait_ms, grace_ms, trigger)
  if redis.call('EXISTS', record) == 1 then
    return cut_size_of(record) or 0
  end
  local members = redis.call('ZRANGE', order, 0, max_size - 1)
  local n = #members
  if n == 0 then
    redis.call('ZREM', deadlines, batch_key)
    return 0
  end
  local values = {}
  for i = 1, n do
    values[i] = redis.call('HGET', pending, members[i])
    redis.call('HDEL', pending, members[i])
  end
  redis.call('ZREMRANGEBYRANK', order, 0, n - 1)
  redis.call('HSET', record,
    'key', batch_key, 'contacts', '[' .. table.concat(values, ',') .. ']', 'size', n,
    'trigger', trigger, 'created_ms', now_ms, 'updated_ms', now_ms, 'attempts', 0)
  move_state(record, gauges, 'cut')
  redis.call('HINCRBY', gauges, 'pending', -n)
  redis.call('ZADD', inflight, now_ms + grace_ms, batch_id)
  redis.call('ZADD', ready, now_ms, batch_id)
  redis.call('ZADD', ready_keys, 'NX', 0, batch_key)
  -- The next oldest contact (if any) sets the new deadline.
  local oldest = redis.call('ZRANGE', order, 0, 0, 'WITHSCORES')
  if #oldest == 0 then
    redis.call('ZREM', deadlines, batch_key)
  else
    redis.call('ZADD', deadlines, tonumber(oldest[2]) + max_wait_ms, batch_key)
  end
  redis.call('HINCRBY', stats, 'batches_cut_' .. trigger, 1)
  redis.call('HINCRBY', stats, 'contacts_cut', n)
  return n
end
