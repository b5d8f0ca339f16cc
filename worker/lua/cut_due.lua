-- cut_due.lua: cut the open batch of one batch key if its deadline has passed.
--
-- KEYS[1] pending hash  KEYS[2] order zset  KEYS[3] deadlines zset  KEYS[4] batch record
-- KEYS[5] inflight zset  KEYS[6] stats hash  KEYS[7] gauges hash  KEYS[8] ready zset
-- KEYS[9] ready keys zset  (layout as in append.lua)
--
-- ARGV[1] now_ms ('' = Redis TIME)  ARGV[2] batch_key  ARGV[3] batch id  ARGV[4] max_size
-- ARGV[5] max_wait_ms  ARGV[6] outbox grace ms
--
-- Returns the number of contacts cut: 0 when the key is not due (another worker cut it first,
-- or a new deadline was set). Run again with the same batch id (a lost reply retried), it
-- answers the first run's size and cuts nothing more, whatever the deadline says now.
local now_ms = clock_ms(ARGV[1])
if redis.call('EXISTS', KEYS[4]) == 1 then
  return cut_size_of(KEYS[4]) or 0
end
local deadline = redis.call('ZSCORE', KEYS[3], ARGV[2])
if not deadline or tonumber(deadline) > now_ms then
  return 0
end
return cut(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9],
           ARGV[2], ARGV[3], now_ms, tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]),
           'time')
