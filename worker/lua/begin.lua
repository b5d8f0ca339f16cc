-- begin.lua: mark a claimed batch `sending`, right before its request leaves, taking out the
-- contacts that may not be called now, and recording a call for each one that goes.
--
-- The sender decided each contact at `decided_at` (gate.lua + the calling policy): back on
-- hold (window closed, not_before, frequency cap) or to the dead letters (expired, suppressed,
-- capped for good, cancelled). Here, in one step with `sending`, every contact that goes is
-- checked again: its template neither paused nor cancelled, its number not suppressed, its
-- caps not used up (the calls recorded here are what the next check counts, so no two
-- replicas pass one cap together), its window still open. Anything changed: nothing is done,
-- and the caller decides again.
--
-- KEYS[1] batch record {ns}:batch:{id}   KEYS[2] inflight zset {ns}:inflight
-- KEYS[3] gauges hash {ns}:gauges   KEYS[4] stats hash {ns}:stats
-- KEYS[5] held hash {ns}:held:{key}  KEYS[6] release zset {ns}:release:{key}
-- KEYS[7] releases zset {ns}:releases  KEYS[8] since zset {ns}:held:since
-- KEYS[9] dead letters hash {ns}:dead  KEYS[10] dead letter index zset {ns}:dead:index
-- KEYS[11] pending hash {ns}:pending:{key}   (KEYS[5..11]: the batch's own key, checked)
-- KEYS[12] suppressed hash  KEYS[13] paused hash  KEYS[14] cancelled hash (see gates.lua)
-- KEYS[15..] calls zset {ns}:calls:{number} of each contact kept, in ARGV's order
--
-- ARGV[1] now_ms ('' = Redis TIME)  ARGV[2] batch id  ARGV[3] owner  ARGV[4] lease_ms
-- ARGV[5] when the caller decided (ms, the shared clock)  ARGV[6] key prefix "{ns}:"
-- ARGV[7] retention s (a batch left empty is finished)  ARGV[8] the contacts kept, as the
-- record's JSON array ('' = all of them)  ARGV[9] k, how many are kept
-- ARGV[10] template ("default" for none)  ARGV[11] caps JSON (gates.lua)
-- ARGV[12] n contacts taken out, then n quadruples:
--   'h', number, release ms, held entry (see entries.lua)     back on hold
--   'x', reason, dead-letter id, record JSON ("at" added)      to the dead letters
-- then k items, one per contact kept: "number|ms its window closes" (0: does not close)
--
-- Returns {code, now_ms}: 1 send now; 2 every contact was taken out (the batch is finished
-- as `held`: do not send); 0 the caller lost the batch (do not send); -1 something changed
-- since the caller decided: decide again and call again.
local now_ms = clock_ms(ARGV[1])
local f = redis.call('HMGET', KEYS[1], 'state', 'owner', 'lease_until', 'key', 'created_ms')
if (f[1] ~= 'claimed' and f[1] ~= 'sending') or f[2] ~= ARGV[3] then
  return {0, now_ms}
end
if tonumber(f[3]) <= now_ms then
  return {0, now_ms}  -- its lease ran out: the reaper may be handing it to another attempt
end
if KEYS[5] ~= ARGV[6] .. 'held:' .. f[4] or KEYS[11] ~= ARGV[6] .. 'pending:' .. f[4] then
  return redis.error_reply('begin.lua: KEYS[5..11] are not those of batch key ' .. f[4])
end
if f[1] == 'sending' then
  -- Only this owner's own begin makes its batch `sending`, and an owner begins once: this is
  -- that call again, its reply lost (a connection dropped as Redis restarted) and the client
  -- retrying. The same answer, nothing done twice: checked again, the call it recorded
  -- would count against its own cap and hold the contact for a day.
  return {1, now_ms}
end
if tonumber(ARGV[5]) > now_ms then
  return {-1, now_ms}
end
local kept = tonumber(ARGV[9])
local template = ARGV[10]
local caps = cjson.decode(ARGV[11])
local removed = tonumber(ARGV[12])
local first_kept = 13 + 4 * removed
if kept > 0 then
  local cancelled = cancelled_at(KEYS[14], template)
  if is_paused(KEYS[13], template) or (cancelled > 0 and cancelled >= tonumber(f[5])) then
    return {-1, now_ms}
  end
end
local numbers = {}
for i = 1, kept do
  local number, closes = string.match(ARGV[first_kept + i - 1], '^([^|]+)|(%d+)$')
  closes = tonumber(closes)
  if (closes > 0 and closes <= now_ms) or is_suppressed(KEYS[12], number, now_ms)
     or capped_until(KEYS[14 + i], template, now_ms, caps) > 0 then
    return {-1, now_ms}
  end
  numbers[i] = number
end

local batch_key = f[4]
for i = 0, removed - 1 do
  local kind, a, b, c = ARGV[13 + 4 * i], ARGV[14 + 4 * i], ARGV[15 + 4 * i], ARGV[16 + 4 * i]
  if kind == 'h' then
    -- A later message for the number may have made it a new entry since the cut: that one
    -- wins, and this contact is merged into it.
    if redis.call('HEXISTS', KEYS[5], a) == 0 and redis.call('HEXISTS', KEYS[11], a) == 0 then
      local parts = split_held(c)
      parts[3] = now_ms  -- held again from now
      add_held(KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[3], batch_key, a, parts, tonumber(b))
      redis.call('HINCRBY', KEYS[4], 'contacts_held_at_send', 1)
    end
  else
    local letter = string.sub(c, 1, -2) .. ',"at":' .. string.format('%.3f', now_ms / 1000) .. '}'
    redis.call('HSET', KEYS[9], b, letter)
    redis.call('ZADD', KEYS[10], now_ms, b)
    redis.call('HINCRBY', KEYS[4], 'contacts_' .. a, 1)
    redis.call('HINCRBY', KEYS[4], 'contacts_dead', 1)
  end
end

if removed > 0 then
  -- The record holds what is really sent from here on.
  local size = tonumber(redis.call('HGET', KEYS[1], 'size'))
  redis.call('HINCRBY', KEYS[3], 'contacts:' .. f[1], kept - size)
  redis.call('HSET', KEYS[1], 'size', kept)
  if kept == 0 then
    move_state(KEYS[1], KEYS[3], 'held')
    redis.call('HDEL', KEYS[1], 'contacts', 'owner', 'lease_until')
    redis.call('HSET', KEYS[1], 'updated_ms', now_ms)
    redis.call('ZREM', KEYS[2], ARGV[2])
    redis.call('EXPIRE', KEYS[1], tonumber(ARGV[7]))
    return {2, now_ms}
  end
  redis.call('HSET', KEYS[1], 'contacts', ARGV[8])
end
for i = 1, kept do
  record_call(KEYS[14 + i], template, ARGV[2], now_ms, tonumber(caps.ttl))
end
local lease_until = now_ms + tonumber(ARGV[4])
move_state(KEYS[1], KEYS[3], 'sending')
redis.call('HSET', KEYS[1], 'lease_until', lease_until, 'updated_ms', now_ms)
redis.call('ZADD', KEYS[2], lease_until, ARGV[2])
return {1, now_ms}
