-- cancel.lua: an operator cancelled a template: move what waits of one batch key to the dead
-- letters as `cancelled` (replayable). One call per step, each bounded:
--
-- mode 'pending': the pending entries the caller read (ARGV[4] max_wait_ms, then for each:
--   number, the stored value it read, dead letter id, dead letter JSON); an entry changed
--   since is left alone
-- mode 'held': up to ARGV[4] held entries (their dead letters are made here)
-- mode 'batch': one batch, if it is still cut or queued (ARGV[4] batch id, ARGV[5] record
--   retention s, then its letters as (id, JSON) pairs); a batch an attempt holds is cancelled
--   by begin.lua instead
--
-- KEYS[1] pending hash {ns}:pending:{key}  KEYS[2] order zset  KEYS[3] deadlines zset
-- KEYS[4] held hash  KEYS[5] release zset  KEYS[6] releases zset  KEYS[7] since zset
-- KEYS[8] gauges hash  KEYS[9] stats hash  KEYS[10] dead letters hash
-- KEYS[11] dead letter index zset  KEYS[12] inflight zset  KEYS[13] ready zset of the key
-- KEYS[14] batch record (mode 'batch'; otherwise any key, untouched)
-- ARGV[1] now_ms ('' = Redis TIME)  ARGV[2] batch key  ARGV[3] mode  ARGV[4..] as above
--
-- Returns how many contacts were dead-lettered.
local now_ms = clock_ms(ARGV[1])
local batch_key = ARGV[2]
local mode = ARGV[3]
local at = string.format('%.3f', now_ms / 1000)
local done = 0

local function letter(id, json)
  redis.call('HSET', KEYS[10], id, string.sub(json, 1, -2) .. ',"at":' .. at .. '}')
  redis.call('ZADD', KEYS[11], now_ms, id)
  done = done + 1
end

if mode == 'pending' then
  local max_wait_ms = tonumber(ARGV[4])
  for i = 5, #ARGV, 4 do
    local number, seen = ARGV[i], ARGV[i + 1]
    if redis.call('HGET', KEYS[1], number) == seen then
      remove_pending(KEYS[1], KEYS[2], KEYS[3], KEYS[8], batch_key, number, max_wait_ms)
      letter(ARGV[i + 2], ARGV[i + 3])
    end
  end
elseif mode == 'held' then
  local numbers = redis.call('HKEYS', KEYS[4])
  for i = 1, math.min(#numbers, tonumber(ARGV[4])) do
    local parts = remove_held(KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], batch_key, numbers[i])
    drop_letter(KEYS[10], KEYS[11], KEYS[9], batch_key, parts, now_ms, 'cancelled',
                'its template was cancelled by an operator')
    done = done + 1
  end
  return done  -- drop_letter counted them
else
  local state = redis.call('HGET', KEYS[14], 'state')
  if state ~= 'cut' and state ~= 'queued' then
    return 0
  end
  move_state(KEYS[14], KEYS[8], 'dead')
  redis.call('HSET', KEYS[14], 'detail', 'cancelled', 'updated_ms', now_ms)
  redis.call('HDEL', KEYS[14], 'contacts')
  redis.call('ZREM', KEYS[12], ARGV[4])
  redis.call('ZREM', KEYS[13], ARGV[4])
  redis.call('EXPIRE', KEYS[14], tonumber(ARGV[5]))
  for i = 6, #ARGV, 2 do
    letter(ARGV[i], ARGV[i + 1])
  end
end
if done > 0 then
  redis.call('HINCRBY', KEYS[9], 'contacts_cancelled', done)
  redis.call('HINCRBY', KEYS[9], 'contacts_dead', done)
end
return done
