-- hold_action.lua: an operator releases or expires one held contact.
--
-- KEYS[1] held hash  KEYS[2] release zset  KEYS[3] releases zset  KEYS[4] since zset
-- KEYS[5] gauges hash  KEYS[6] stats hash  KEYS[7] dead letters hash  KEYS[8] dead letter index
-- (layout as in entries.lua)
--
-- ARGV[1] now_ms ('' = Redis TIME)  ARGV[2] batch key  ARGV[3] E.164 number
-- ARGV[4] release | expire  ARGV[5] the contact id the operator saw (the entry is left alone
-- if a later message replaced it)  ARGV[6] release: an IANA time zone to call it in ('' =
-- call it whatever its window says)  ARGV[7] the operator's note
--
-- release: due now, for the next flusher pass. With a time zone, its window is checked again
-- in that zone when it is sent; without one, the operator takes the timing on themselves
-- (window and not_before are not checked again; expire_at, caps and the do-not-call list are).
-- expire: to the dead letters as `expired`, with the note.
--
-- Returns 1 if done, 0 if there is no such held contact (any more).
local now_ms = clock_ms(ARGV[1])
local value = redis.call('HGET', KEYS[1], ARGV[3])
if not value then
  return 0
end
local parts = split_held(value)
if cjson.decode(parts[1]) ~= ARGV[5] then
  return 0
end
if ARGV[4] == 'expire' then
  remove_held(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[2], ARGV[3])
  drop_letter(KEYS[7], KEYS[8], KEYS[6], ARGV[2], parts, now_ms, 'expired',
              'expired by an operator: ' .. ARGV[7])
  return 1
end
local schedule = parts[4] ~= '' and cjson.decode(parts[4]) or {}
if ARGV[6] ~= '' then
  schedule['tz'] = ARGV[6]
else
  schedule['op'] = 1
end
parts[4] = cjson.encode(schedule)
redis.call('HSET', KEYS[1], ARGV[3], table.concat(parts, '\n'))
redis.call('ZADD', KEYS[2], now_ms, ARGV[3])
set_release(KEYS[2], KEYS[3], ARGV[2])
redis.call('HINCRBY', KEYS[6], 'holds_released_by_operator', 1)
return 1
