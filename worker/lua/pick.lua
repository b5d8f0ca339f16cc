-- pick.lua: choose the next batch to send, round robin across batch keys, and claim it.
--
-- A send message is a token for one request. It names a batch (the hint), but the batch sent
-- is the oldest ready batch of the batch key that was served longest ago, so one template's
-- backlog cannot starve the others. Every ready batch has a token on its way (or gets one from
-- the reaper when it becomes due), so a batch passed over now is sent by a later token.
--
-- KEYS[1] record of the hint batch {ns}:batch:{hint}   KEYS[2] inflight zset {ns}:inflight
-- KEYS[3] ready keys zset {ns}:ready   batch key -> when it was last served (ms)
-- KEYS[4] gauges hash {ns}:gauges   KEYS[5] paused hash {ns}:paused (template or "*" -> ...)
-- ARGV[1] now_ms ('' = Redis TIME)  ARGV[2] hint batch id  ARGV[3] lease_ms  ARGV[4] owner
-- ARGV[5] resend unknown (0/1)  ARGV[6] key prefix "{ns}:"
--
-- The one script that builds key names ({ns}:ready:{batch key}, {ns}:batch:{id},
-- {ns}:reply:{owner}) from
-- ARGV[6]: which keys it reads is decided by what it finds (the round robin), so they cannot
-- be named in advance. Fine on one Redis; dramatiq's broker rules out Redis Cluster anyway.
--
-- Returns {verdict, batch_key, contacts_json, attempts, first_attempt_ms, now_ms, batch_id}:
-- `unknown` for the hint batch when its attempt died in `sending` (its token resolves it),
-- `claimed` with the batch picked, or `idle` when no batch is ready.
--
-- An owner is one attempt (a fresh id), and a claim is remembered for its lease under
-- {ns}:reply:{owner}. The same call run again (its reply lost, redis-py retrying) would claim
-- the next ready batch too, and the first would sit claimed by nobody until its lease ran
-- out (120 s), one attempt spent; it answers the first claim instead.
local now_ms = clock_ms(ARGV[1])
local lease_ms = tonumber(ARGV[3])
local prefix = ARGV[6]
local reply = prefix .. 'reply:' .. ARGV[4]

local first = redis.call('GET', reply)
if first then
  local f = redis.call('HMGET', prefix .. 'batch:' .. first, 'state', 'owner', 'key', 'contacts',
                       'attempts', 'first_attempt_ms', 'lease_until')
  if f[1] == 'claimed' and f[2] == ARGV[4] and tonumber(f[7]) > now_ms then
    return {'claimed', f[3], f[4], tonumber(f[5]), tonumber(f[6]), now_ms, first}
  end
end

local hint = redis.call('HMGET', KEYS[1], 'state', 'lease_until', 'key')
if (hint[1] == 'sending' or hint[1] == 'claimed') and tonumber(hint[2]) <= now_ms then
  if hint[1] == 'sending' and ARGV[5] ~= '1' then
    local r = try_claim(KEYS[1], KEYS[2], KEYS[4], ARGV[2], now_ms, lease_ms, ARGV[4], ARGV[5])
    table.insert(r, ARGV[2])
    return r
  end
  -- Its attempt died before the request left (or may be resent): ready again, in its turn.
  redis.call('ZADD', prefix .. 'ready:' .. hint[3], now_ms, ARGV[2])
  redis.call('ZADD', KEYS[3], 'NX', 0, hint[3])
end

-- A paused template's batches wait, ready, for its resume (which hands them tokens).
if redis.call('HEXISTS', KEYS[5], '*') == 1 then
  return {'idle', '', '', 0, 0, now_ms, ''}
end
-- The oldest ready batches of one key, claimed if one can be; nil when none.
local function pick_from(batch_key)
  local ready = prefix .. 'ready:' .. batch_key
  local ids = redis.call('ZRANGEBYSCORE', ready, '-inf', now_ms, 'LIMIT', 0, 20)
  for _, id in ipairs(ids) do
    redis.call('ZREM', ready, id)
    local r = try_claim(prefix .. 'batch:' .. id, KEYS[2], KEYS[4], id, now_ms, lease_ms,
                        ARGV[4], ARGV[5])
    if r[1] == 'claimed' then
      redis.call('SET', reply, id, 'PX', lease_ms)
      if redis.call('ZCARD', ready) == 0 then
        redis.call('ZREM', KEYS[3], batch_key)
      else
        redis.call('ZADD', KEYS[3], now_ms, batch_key)
      end
      table.insert(r, id)
      return r
    end
    -- Anything else (sent, dead, held by a live attempt, unknown) is not ready: the reaper
    -- makes it ready again if its attempt dies.
  end
  if redis.call('ZCARD', ready) == 0 then
    redis.call('ZREM', KEYS[3], batch_key)
  end
  return nil
end

for _, batch_key in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  local template = string.sub(batch_key, 1, -3)  -- a batch key is "<template>:<0|1>"
  if redis.call('HEXISTS', KEYS[5], template) == 0 then
    local r = pick_from(batch_key)
    if r then
      return r
    end
  end
end
return {'idle', '', '', 0, 0, now_ms, ''}
