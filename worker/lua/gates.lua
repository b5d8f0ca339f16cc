-- Shared by gate.lua, begin.lua and finish.lua (prepended when registered): what may stop a
-- contact from being called at the moment its batch is marked sending, besides its window;
-- and the member that records a call (finish.lua takes back the one begin.lua recorded).
--
-- suppressed hash {ns}:suppressed   number -> "expire ms|added ms|note" (expire 0 = never)
-- paused hash     {ns}:paused       template (or "*": every template) -> operator's record
-- cancelled hash  {ns}:cancelled    template (or "*") -> when it was cancelled (ms)
-- calls zset      {ns}:calls:{number}   "template|call" -> when it was called (ms), kept for
--                 the longest cap period; "call" is the first 16 characters of the batch id
--                 (call_member: members of at most 64 bytes keep Redis's compact listpack
--                 encoding, 4 times smaller than a skiplist; finish.lua forgets the same one)
-- caps: {o = {{calls, period ms}, ...}, og = gap ms, t = {...}, tg = gap ms, ttl = ms}: the
-- policy's caps over every template (o, og) and over this template (t, tg).

local function is_suppressed(suppressed, number, now_ms)
  local value = redis.call('HGET', suppressed, number)
  if not value then
    return false
  end
  local expire_ms = tonumber(string.match(value, '^(%d+)|')) or 0
  return expire_ms == 0 or expire_ms > now_ms
end

local function is_paused(paused, template)
  return redis.call('HEXISTS', paused, template) == 1 or redis.call('HEXISTS', paused, '*') == 1
end

-- When the template was last cancelled (ms), or 0.
local function cancelled_at(cancelled, template)
  local mine = tonumber(redis.call('HGET', cancelled, template) or '0')
  local every = tonumber(redis.call('HGET', cancelled, '*') or '0')
  return math.max(mine, every)
end

-- The first ms at which a call keeps within `limits` and `gap`, and which of them decides it
-- (0: the gap, i: the i-th limit; nil: none stands in the way).
local function first_free(times, limits, gap, now_ms)
  local earliest, which = now_ms, nil
  if gap > 0 and #times > 0 and now_ms - times[#times] < gap then
    earliest, which = times[#times] + gap, 0
  end
  for index, limit in ipairs(limits) do
    local calls, period = limit[1], limit[2]
    local inside = {}
    for _, t in ipairs(times) do
      if now_ms - t < period then
        inside[#inside + 1] = t
      end
    end
    if #inside >= calls then
      -- Free once enough of them have left the rolling period.
      local free = inside[#inside - calls + 1] + period
      if free > earliest then
        earliest, which = free, index
      end
    end
  end
  return earliest, which
end

-- 0 if a call now keeps within the caps; else the first ms at which one would, and the cap
-- that decides it: 'o' (over every template) or 't' (this template's own), then 0 for the gap
-- or the limit's index (1-based), e.g. 'o1'.
local function capped_until(calls_key, template, now_ms, caps)
  local raw = redis.call('ZRANGEBYSCORE', calls_key, '-inf', now_ms, 'WITHSCORES')
  local every, mine = {}, {}
  local prefix = template .. '|'
  for i = 1, #raw, 2 do
    local t = tonumber(raw[i + 1])
    every[#every + 1] = t
    if string.sub(raw[i], 1, #prefix) == prefix then
      mine[#mine + 1] = t
    end
  end
  local at_o, which_o = first_free(every, caps.o, caps.og, now_ms)
  local at_t, which_t = first_free(mine, caps.t, caps.tg, now_ms)
  if at_o <= now_ms and at_t <= now_ms then
    return 0, ''
  end
  if at_t > at_o then
    return at_t, 't' .. which_t
  end
  return at_o, 'o' .. which_o
end

local function call_member(template, batch_id)
  return template .. '|' .. string.sub(batch_id, 1, 16)
end

local function record_call(calls_key, template, batch_id, now_ms, ttl_ms)
  if ttl_ms <= 0 then
    return
  end
  redis.call('ZADD', calls_key, now_ms, call_member(template, batch_id))
  redis.call('ZREMRANGEBYSCORE', calls_key, '-inf', now_ms - ttl_ms)
  redis.call('PEXPIRE', calls_key, ttl_ms)
end
