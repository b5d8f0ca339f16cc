-- outcome.lua: record the call-ended event of one contact, and settle its unknown outcome.
--
-- KEYS[1] outcome record       {ns}:outcome:{contact_id}        JSON string, with a TTL
-- KEYS[2] batch outcomes       {ns}:outcomes:batch:{batch_id}    hash contact id -> summary
-- KEYS[3] batch record         {ns}:batch:{batch_id}             (read: known batch, its key)
-- KEYS[4] dead letters hash    {ns}:dead
-- KEYS[5] dead letter index    {ns}:dead:index
-- KEYS[6] stats hash           {ns}:stats
-- KEYS[7] unknown watch zset   {ns}:unknown:watch
-- KEYS[8] call output labels   {ns}:outcomes:labels:call_output  (set, capped)
-- KEYS[9] ended reason labels  {ns}:outcomes:labels:ended_reason (set, capped)
-- KEYS[10] webhook health      {ns}:webhook:last                 ms of the last event
--
-- ARGV[1] now_ms ('' = Redis TIME)  ARGV[2] contact id  ARGV[3] event id
-- ARGV[4] the record (JSON object; `receivedAt`, `batchKey` and `settled` are added here)
-- ARGV[5] retention s  ARGV[6] labels cap  ARGV[7] call output label candidate
-- ARGV[8] ended reason label candidate  ARGV[9] summary for the batch hash
-- ARGV[10..] dead-letter ids this contact may have as an unknown outcome (<batch_id>:<index>)
--
-- Returns {status, batch_key, call_output_label, ended_reason_label, settled dead-letter id}:
--   recorded     first event for the contact: stored (and its unknown outcome settled)
--   duplicate    the same event again (a redelivered message): nothing changed
--   second_event another event for a contact that has one: nothing changed (kept as unmatched
--                by the caller)
--   unknown_batch the batch is not known here: nothing changed (kept as unmatched)
--
-- Labels: a candidate word is admitted while the set holds fewer than the cap, so every
-- process and replica folds the same words into `other` (bounded metric labels).
local now_ms = clock_ms(ARGV[1])
local key = redis.call('HGET', KEYS[3], 'key')
local existing = redis.call('GET', KEYS[1])

local function label(set, candidate)
  if candidate == 'none' or candidate == 'other' or candidate == 'structured' then
    return candidate
  end
  if redis.call('SISMEMBER', set, candidate) == 1 then
    return candidate
  end
  if redis.call('SCARD', set) < tonumber(ARGV[6]) then
    redis.call('SADD', set, candidate)
    return candidate
  end
  return 'other'
end

if existing then
  local record = cjson.decode(existing)
  local status = 'second_event'
  if record['eventId'] == ARGV[3] then
    status = 'duplicate'
  end
  return {status, record['batchKey'] or key or '', '', '', ''}
end
if not key then
  return {'unknown_batch', '', '', '', ''}
end

local record = cjson.decode(ARGV[4])
record['receivedAt'] = now_ms / 1000
record['batchKey'] = key
record['settled'] = false
local settled = ''
for i = 10, #ARGV do
  local raw = redis.call('HGET', KEYS[4], ARGV[i])
  if raw then
    local letter = cjson.decode(raw)
    if letter['reason'] == 'unknown_outcome' and letter['contact_id'] == ARGV[2] then
      -- Levers reported the call: the contact was called, it is no unknown any more.
      redis.call('HDEL', KEYS[4], ARGV[i])
      redis.call('ZREM', KEYS[5], ARGV[i])
      redis.call('ZREM', KEYS[7], ARGV[i])
      redis.call('HINCRBY', KEYS[6], 'contacts_settled', 1)
      record['settled'] = true
      record['settledDeadLetter'] = ARGV[i]
      settled = ARGV[i]
      break
    end
  end
end
local ttl = tonumber(ARGV[5])
redis.call('SET', KEYS[1], cjson.encode(record), 'EX', ttl)
redis.call('HSET', KEYS[2], ARGV[2], ARGV[9])
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('HINCRBY', KEYS[6], 'calls_ended', 1)
redis.call('SET', KEYS[10], now_ms)
return {'recorded', key, label(KEYS[8], ARGV[7]), label(KEYS[9], ARGV[8]), settled}
