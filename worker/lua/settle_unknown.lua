-- settle_unknown.lua: look at one watched `unknown_outcome` dead letter.
--
-- KEYS[1] dead letters hash {ns}:dead   KEYS[2] dead letter index {ns}:dead:index
-- KEYS[3] unknown watch zset {ns}:unknown:watch   KEYS[4] stats hash {ns}:stats
-- KEYS[5] outcome record of the dead letter's contact {ns}:outcome:{contact_id}
-- ARGV[1] now_ms ('' = Redis TIME)  ARGV[2] dead-letter id  ARGV[3] grace ms
--
-- Returns:
--   settled  the contact's call-ended event is recorded: it was called; the dead letter is
--            removed and the outcome marked settled (the event came before the dead letter)
--   gone     the dead letter is no longer there (replayed, purged, settled): not watched
--   due      no event, and the grace period is over: the caller resends it or stops watching
--   waiting  no event yet, within the grace period
local now_ms = clock_ms(ARGV[1])
local raw = redis.call('HGET', KEYS[1], ARGV[2])
if not raw then
  redis.call('ZREM', KEYS[3], ARGV[2])
  return 'gone'
end
local outcome = redis.call('GET', KEYS[5])
if outcome then
  local record = cjson.decode(outcome)
  record['settled'] = true
  record['settledDeadLetter'] = ARGV[2]
  redis.call('SET', KEYS[5], cjson.encode(record), 'KEEPTTL')
  redis.call('HDEL', KEYS[1], ARGV[2])
  redis.call('ZREM', KEYS[2], ARGV[2])
  redis.call('ZREM', KEYS[3], ARGV[2])
  redis.call('HINCRBY', KEYS[4], 'contacts_settled', 1)
  return 'settled'
end
local at = redis.call('ZSCORE', KEYS[3], ARGV[2])
if at and tonumber(at) + tonumber(ARGV[3]) <= now_ms then
  return 'due'
end
return 'waiting'
