-- Shared by the scripts that put a contact somewhere in its batch key (prepended when
-- registered, after clock.lua and states.lua): the pending buffer, or the holds.
--
-- A number has at most one entry per batch key, pending or held, so it is never in two open
-- batches; a later message for it replaces the entry (its fields and its schedule win).
--
-- pending  hash {ns}:pending:{key} number -> '[contact id, entry, arrival ms(, schedule)]'
--          zset {ns}:order:{key}   number -> arrival ms;  zset {ns}:deadlines key -> cut-by ms
-- held     hash {ns}:held:{key}    number -> parts joined by "\n": contact id (JSON string),
--          entry (JSON), since ms, schedule (JSON or ''), reason, expire ms (0 = none)
--          zset {ns}:release:{key} number -> when to look at it again: its release or its
--          expiry, whichever is first (NEVER when neither is known)
--          zset {ns}:releases      key -> the earliest of that key's release zset
--          zset {ns}:held:since    "key number" -> since ms (the oldest hold; operator lists)
-- Compact JSON never holds a raw newline, so "\n" separates the parts safely.
local NEVER = 4503599627370496  -- 2^52 ms: held until an operator or a policy change acts

local function set_deadline(order, deadlines, batch_key, max_wait_ms)
  local oldest = redis.call('ZRANGE', order, 0, 0, 'WITHSCORES')
  if #oldest == 0 then
    redis.call('ZREM', deadlines, batch_key)
  else
    redis.call('ZADD', deadlines, tonumber(oldest[2]) + max_wait_ms, batch_key)
  end
end

local function add_pending(pending, order, deadlines, gauges, batch_key, number, stored,
                           arrival_ms, max_wait_ms)
  redis.call('HSET', pending, number, stored)
  redis.call('ZADD', order, arrival_ms, number)
  redis.call('ZADD', deadlines, 'NX', arrival_ms + max_wait_ms, batch_key)
  redis.call('HINCRBY', gauges, 'pending', 1)
end

-- Returns the arrival time of the entry removed, or nil when there was none.
local function remove_pending(pending, order, deadlines, gauges, batch_key, number, max_wait_ms)
  local arrival = redis.call('ZSCORE', order, number)
  if not arrival then
    return nil
  end
  redis.call('HDEL', pending, number)
  redis.call('ZREM', order, number)
  redis.call('HINCRBY', gauges, 'pending', -1)
  set_deadline(order, deadlines, batch_key, max_wait_ms)
  return tonumber(arrival)
end

local function set_release(release, releases, batch_key)
  local first = redis.call('ZRANGE', release, 0, 0, 'WITHSCORES')
  if #first == 0 then
    redis.call('ZREM', releases, batch_key)
  else
    redis.call('ZADD', releases, tonumber(first[2]), batch_key)
  end
end

local function split_held(value)
  local parts = {}
  for part in string.gmatch(value .. '\n', '([^\n]*)\n') do
    parts[#parts + 1] = part
  end
  return parts
end

-- Hold a contact. parts: {contact id JSON, entry JSON, since ms, schedule or '', reason,
-- expire ms}; release_ms < 0: no known release time.
local function add_held(held, release, releases, since, gauges, batch_key, number, parts,
                        release_ms)
  local expire_ms = tonumber(parts[6]) or 0
  local score = release_ms < 0 and NEVER or release_ms
  if expire_ms > 0 and expire_ms < score then
    score = expire_ms
  end
  redis.call('HSET', held, number, table.concat(parts, '\n'))
  redis.call('ZADD', release, score, number)
  redis.call('ZADD', since, tonumber(parts[3]), batch_key .. ' ' .. number)
  redis.call('HINCRBY', gauges, 'held', 1)
  redis.call('HINCRBY', gauges, 'held:' .. parts[5], 1)
  set_release(release, releases, batch_key)
end

-- Returns the parts of the entry removed, or nil when there was none.
local function remove_held(held, release, releases, since, gauges, batch_key, number)
  local value = redis.call('HGET', held, number)
  if not value then
    return nil
  end
  local parts = split_held(value)
  redis.call('HDEL', held, number)
  redis.call('ZREM', release, number)
  redis.call('ZREM', since, batch_key .. ' ' .. number)
  redis.call('HINCRBY', gauges, 'held', -1)
  redis.call('HINCRBY', gauges, 'held:' .. parts[5], -1)
  set_release(release, releases, batch_key)
  return parts
end

-- The pending form of a held contact, arriving now.
local function pending_entry(parts, now_ms)
  local schedule = parts[4] ~= '' and (',' .. parts[4]) or ''
  return '[' .. parts[1] .. ',' .. parts[2] .. ',' .. now_ms .. schedule .. ']'
end

-- A dead letter for a contact dropped before it was ever in a batch (expired, cancelled),
-- made from its entry's parts: its id is the contact id.
local function drop_letter(dead, dead_index, stats, batch_key, parts, now_ms, reason, detail)
  local id = cjson.decode(parts[1])
  local letter = '{"id":' .. parts[1] .. ',"reason":' .. cjson.encode(reason)
    .. ',"batch_id":null,"batch_key":' .. cjson.encode(batch_key) .. ',"contact_id":'
    .. parts[1] .. ',"contact":' .. parts[2] .. ',"status":null,"detail":'
    .. cjson.encode(detail) .. ',"attempts":0,"at":' .. string.format('%.3f', now_ms / 1000)
    .. '}'
  redis.call('HSET', dead, id, letter)
  redis.call('ZADD', dead_index, now_ms, id)
  redis.call('HINCRBY', stats, 'contacts_' .. reason, 1)
  redis.call('HINCRBY', stats, 'contacts_dead', 1)
end
