-- gate.lua: what stands between a claimed batch and its request, besides windows (read only):
-- a pause or cancel of its template, suppressed numbers, and frequency caps. The sender
-- decides from this, then begin.lua checks the same again as it marks the batch sending.
--
-- KEYS[1] batch record {ns}:batch:{id}  KEYS[2] suppressed hash  KEYS[3] paused hash
-- KEYS[4] cancelled hash  KEYS[5..] calls zset of each contact's number, in the batch's order
-- (layout in gates.lua)
-- ARGV[1] now_ms ('' = Redis TIME)  ARGV[2] template ("default" for none)  ARGV[3] caps JSON
-- ARGV[4..] each contact's number, in the batch's order
--
-- Returns {now_ms, paused 0/1, cancelled 0/1, then per contact: suppressed 0/1, capped
-- until ms (0: free), the cap that decides it ('' when free; see capped_until in gates.lua)}.
local now_ms = clock_ms(ARGV[1])
local template = ARGV[2]
local caps = cjson.decode(ARGV[3])
local created = tonumber(redis.call('HGET', KEYS[1], 'created_ms') or '0')
local cancelled = cancelled_at(KEYS[4], template)
local reply = {now_ms, is_paused(KEYS[3], template) and 1 or 0,
               (cancelled > 0 and cancelled >= created) and 1 or 0}
for i = 4, #ARGV do
  reply[#reply + 1] = is_suppressed(KEYS[2], ARGV[i], now_ms) and 1 or 0
  local until_ms, cap = capped_until(KEYS[i + 1], template, now_ms, caps)
  reply[#reply + 1] = until_ms
  reply[#reply + 1] = cap
end
return reply
