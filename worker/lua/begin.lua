-- begin.lua: mark a claimed batch `sending`, right before its request leaves, taking out the
-- contacts that may not be called now (checked again at this moment: a window that closed
-- while the batch waited for the rate limit holds the contact again; an expire_at that passed
-- dead-letters it). The check and `sending` are one step, so no replica sends what another
-- just held.
--
-- KEYS[1] batch record {ns}:batch:{id}   KEYS[2] inflight zset {ns}:inflight
-- KEYS[3] gauges hash {ns}:gauges   KEYS[4] stats hash {ns}:stats
-- KEYS[5] held hash {ns}:held:{key}  KEYS[6] release zset {ns}:release:{key}
-- KEYS[7] releases zset {ns}:releases  KEYS[8] since zset {ns}:held:since
-- KEYS[9] dead letters hash {ns}:dead  KEYS[10] dead letter index zset {ns}:dead:index
-- KEYS[11] pending hash {ns}:pending:{key}   (KEYS[5..11]: the batch's own key, checked)
--
-- ARGV[1] now_ms ('' = Redis TIME)  ARGV[2] batch id  ARGV[3] owner  ARGV[4] lease_ms
-- ARGV[5] when the caller decided (ms, the shared clock)  ARGV[6] key prefix "{ns}:"
-- ARGV[7] retention s (a batch left empty is finished)  ARGV[8] the contacts kept, as the
-- record's JSON array ('' = all of them)  ARGV[9] how many are kept
-- ARGV[10] n contacts taken out, then n quadruples:
--   'h', number, release ms, held entry (see entries.lua)     back on hold
--   'x', number, dead-letter id, record JSON ("at" added)      expired
-- then, to the end: the ms at which each kept contact's window closes (those that close).
--
-- Returns {code, now_ms}: 1 send now; 2 every contact was taken out (the batch is finished
-- as `held`: do not send); 0 the caller lost the batch (do not send); -1 a window closed (or
-- the caller's decision is older than its look): decide again and call again.
local now_ms = clock_ms(ARGV[1])
local f = redis.call('HMGET', KEYS[1], 'state', 'owner', 'lease_until', 'key')
if (f[1] ~= 'claimed' and f[1] ~= 'sending') or f[2] ~= ARGV[3] then
  return {0, now_ms}
end
if tonumber(f[3]) <= now_ms then
  return {0, now_ms}  -- its lease ran out: the reaper may be handing it to another attempt
end
if KEYS[5] ~= ARGV[6] .. 'held:' .. f[4] or KEYS[11] ~= ARGV[6] .. 'pending:' .. f[4] then
  return redis.error_reply('begin.lua: KEYS[5..11] are not those of batch key ' .. f[4])
end
if tonumber(ARGV[5]) > now_ms then
  return {-1, now_ms}
end
local removed = tonumber(ARGV[10])
for i = 11 + 4 * removed, #ARGV do
  if tonumber(ARGV[i]) <= now_ms then
    return {-1, now_ms}
  end
end

local batch_key = f[4]
for i = 0, removed - 1 do
  local kind, number, a, b = ARGV[11 + 4 * i], ARGV[12 + 4 * i], ARGV[13 + 4 * i],
    ARGV[14 + 4 * i]
  if kind == 'h' then
    -- A later message for the number may have made it a new entry since the cut: that one
    -- wins, and this contact is merged into it.
    if redis.call('HEXISTS', KEYS[5], number) == 0 and
       redis.call('HEXISTS', KEYS[11], number) == 0 then
      local parts = split_held(b)
      parts[3] = now_ms  -- held again from now
      add_held(KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[3], batch_key, number, parts,
               tonumber(a))
      redis.call('HINCRBY', KEYS[4], 'contacts_held_at_send', 1)
    end
  else
    local letter = string.sub(b, 1, -2) .. ',"at":' .. string.format('%.3f', now_ms / 1000) .. '}'
    redis.call('HSET', KEYS[9], a, letter)
    redis.call('ZADD', KEYS[10], now_ms, a)
    redis.call('HINCRBY', KEYS[4], 'contacts_expired', 1)
    redis.call('HINCRBY', KEYS[4], 'contacts_dead', 1)
  end
end

if removed > 0 then
  -- The record holds what is really sent from here on.
  local kept = tonumber(ARGV[9])
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
local lease_until = now_ms + tonumber(ARGV[4])
move_state(KEYS[1], KEYS[3], 'sending')
redis.call('HSET', KEYS[1], 'lease_until', lease_until, 'updated_ms', now_ms)
redis.call('ZADD', KEYS[2], lease_until, ARGV[2])
return {1, now_ms}
