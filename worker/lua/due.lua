-- due.lua: what of one schedule is due, by the shared clock (read only).
--
-- KEYS[1] schedule zset   member -> due time (ms): {ns}:deadlines or {ns}:inflight
-- ARGV[1] now_ms ('' = Redis TIME)  ARGV[2] at most this many members
--
-- Returns {now_ms, next_due_ms or -1, member, member, ...}: the members due now, oldest
-- first, and the earliest due time of all (so the caller knows how long it may sleep).
local now_ms = clock_ms(ARGV[1])
local reply = {now_ms, -1}
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #first > 0 then
  reply[2] = tonumber(first[2])
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'LIMIT', 0, tonumber(ARGV[2]))
for i = 1, #due do
  reply[#reply + 1] = due[i]
end
return reply
