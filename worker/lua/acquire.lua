-- acquire.lua: reserve the earliest time a request of `cost` contacts may leave, across
-- every replica, under two sliding-window limits and a shared pause.
--
-- KEYS[1] request log   zset {ns}:rate:requests   member "<id>" -> reserved time (ms)
-- KEYS[2] contact log   zset {ns}:rate:contacts   member "<id>:<cost>" -> reserved time (ms)
-- KEYS[3] pause         string {ns}:pause         time (ms) until which nobody sends (429)
-- KEYS[4] adaptive      hash {ns}:rate:adaptive   its `rate` replaces ARGV[5] when ARGV[8] = 1
--
-- ARGV[1] now_ms ('' = Redis TIME)  ARGV[2] reservation id  ARGV[3] cost (contacts)
-- ARGV[4] request limit per window  ARGV[5] request window ms
-- ARGV[6] contact limit per window (0 = off)  ARGV[7] contact window ms
-- ARGV[8] 1 = adaptive mode  ARGV[9] jitter ms tolerated per second (see ratelimit.py)
--
-- Returns the ms from now until the reserved time (>= 0). The caller waits that long and
-- sends; the reservation stands even if it does not send, so every window holds at most its
-- limit. A delay, not a time, so that no caller ever compares it with its own host's clock.
--
-- Each log keeps reservations in time order. A new one goes no earlier than the last
-- (first come, first served) and no earlier than the time the oldest entries have left
-- the window far enough for `cost` more to fit.
local now_ms = clock_ms(ARGV[1])
-- The same call run again (its reply lost, redis-py retrying) finds its own reservation,
-- which would count against it and push it one spacing later: it answers that one instead.
local mine = redis.call('ZSCORE', KEYS[1], ARGV[2])
if mine then
  return math.max(0, math.ceil(tonumber(mine) - now_ms))
end
local cost = tonumber(ARGV[3])

local function earliest(log, limit, window, weight)
  redis.call('ZREMRANGEBYSCORE', log, '-inf', now_ms - window)
  local entries = redis.call('ZRANGE', log, 0, -1, 'WITHSCORES')
  local t = now_ms
  local n = #entries / 2
  if n == 0 then
    return t
  end
  t = math.max(t, tonumber(entries[2 * n]))
  -- Walk from the newest entry back, summing costs, until the window would overflow:
  -- the entry that overflows it must have left the window by then.
  local used = cost
  for i = n, 1, -1 do
    used = used + weight(entries[2 * i - 1])
    if used > limit then
      return math.max(t, tonumber(entries[2 * i]) + window)
    end
  end
  return t
end

local function one(_) return 1 end
local function contacts(member) return tonumber(string.match(member, ':(%d+)$')) end

local request_window = tonumber(ARGV[5])
if ARGV[8] == '1' then
  local rate = tonumber(redis.call('HGET', KEYS[4], 'rate'))
  if rate then
    request_window = (1000 + tonumber(ARGV[9])) / rate
  end
end
local at = earliest(KEYS[1], tonumber(ARGV[4]), request_window, one)
local contact_limit = tonumber(ARGV[6])
if contact_limit > 0 then
  at = math.max(at, earliest(KEYS[2], contact_limit, tonumber(ARGV[7]), contacts))
end
local paused = tonumber(redis.call('GET', KEYS[3]) or '0')
at = math.max(at, paused)

redis.call('ZADD', KEYS[1], at, ARGV[2])
redis.call('PEXPIRE', KEYS[1], math.ceil(at - now_ms + request_window) + 1000)
if contact_limit > 0 then
  redis.call('ZADD', KEYS[2], at, ARGV[2] .. ':' .. cost)
  redis.call('PEXPIRE', KEYS[2], math.ceil(at - now_ms + tonumber(ARGV[7])) + 1000)
end
return math.ceil(at - now_ms)
