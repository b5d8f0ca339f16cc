-- release.lua: move the held contacts of one batch key whose time has come into its open
-- batch (cutting full batches as it goes), or to the dead letters when their expire_at came
-- first. Bounded per call, so appends of new contacts are never blocked for long.
--
-- KEYS[1] held hash  KEYS[2] release zset  KEYS[3] releases zset  KEYS[4] since zset
-- KEYS[5] pending hash  KEYS[6] order zset  KEYS[7] deadlines zset  KEYS[8] stats hash
-- KEYS[9] gauges hash  KEYS[10] dead letters hash  KEYS[11] dead letter index zset
-- KEYS[12] inflight zset  KEYS[13] ready zset  KEYS[14] ready keys zset
-- KEYS[15] this call's reply {ns}:reply:{ARGV[8]}
-- KEYS[16..] batch records for the cuts, one per id in ARGV[8..]
-- (layout as in entries.lua and append.lua)
--
-- ARGV[1] now_ms ('' = Redis TIME)  ARGV[2] batch key  ARGV[3] at most this many contacts
-- ARGV[4] max_size  ARGV[5] max_wait_ms  ARGV[6] outbox grace ms
-- ARGV[7] how long the reply is kept, s  ARGV[8..] batch ids, fresh for each call
-- (the caller passes enough: max_size - 1 pending plus ARGV[3] released need at most
-- ARGV[3] / max_size + 1 cuts)
--
-- Returns {released, expired, cut batch ids...}.
--
-- Run twice (its reply lost, redis-py sending the same call again), the second run would
-- release the next due contacts and cut them under the first run's batch ids. So each call
-- that moved contacts keeps its answer as "released expired cuts" under its first batch id,
-- and a second run answers that and does nothing.
local kept = redis.call('GET', KEYS[15])
if kept then
  local released, expired, cuts = string.match(kept, '^(%d+) (%d+) (%d+)$')
  local reply = {tonumber(released), tonumber(expired)}
  for i = 1, tonumber(cuts) do
    reply[#reply + 1] = ARGV[7 + i]
  end
  return reply
end
local now_ms = clock_ms(ARGV[1])
local batch_key = ARGV[2]
local max_size = tonumber(ARGV[4])
local max_wait_ms = tonumber(ARGV[5])
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now_ms, 'LIMIT', 0, tonumber(ARGV[3]))
local released, expired = 0, 0
for _, number in ipairs(due) do
  local parts = remove_held(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[9], batch_key, number)
  local expire_ms = tonumber(parts[6]) or 0
  if expire_ms > 0 and expire_ms <= now_ms then
    drop_letter(KEYS[10], KEYS[11], KEYS[8], batch_key, parts, now_ms, 'expired',
                'expire_at passed while it was held (' .. parts[5] .. ')')
    expired = expired + 1
  else
    add_pending(KEYS[5], KEYS[6], KEYS[7], KEYS[9], batch_key, number,
                pending_entry(parts, now_ms), now_ms, max_wait_ms)
    released = released + 1
  end
end
if released > 0 then
  redis.call('HINCRBY', KEYS[8], 'contacts_released', released)
end
local reply = {released, expired}
local next_id = 8
while redis.call('ZCARD', KEYS[6]) >= max_size and ARGV[next_id] do
  cut(KEYS[5], KEYS[6], KEYS[7], KEYS[16 + next_id - 8], KEYS[12], KEYS[8], KEYS[9], KEYS[13],
      KEYS[14], batch_key, ARGV[next_id], now_ms, max_size, max_wait_ms, tonumber(ARGV[6]),
      'size')
  reply[#reply + 1] = ARGV[next_id]
  next_id = next_id + 1
end
-- A call that moved nothing keeps no answer: run again, it finds what is due then, and any
-- cut it makes goes under ids no record has yet (cut() never writes over one).
if released + expired > 0 then
  redis.call('SET', KEYS[15], released .. ' ' .. expired .. ' ' .. (#reply - 2), 'EX', ARGV[7])
end
return reply
