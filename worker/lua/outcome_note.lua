-- outcome_note.lua: add one field to a contact's outcome record, keeping its TTL.
--
-- KEYS[1] outcome record {ns}:outcome:{contact_id}
-- ARGV[1] now_ms ('' = Redis TIME; unused)  ARGV[2] field name  ARGV[3] its value (JSON)
--
-- Returns 1 when the record was there, 0 when it was not (expired): nothing is written then.
local raw = redis.call('GET', KEYS[1])
if not raw then
  return 0
end
local record = cjson.decode(raw)
record[ARGV[2]] = cjson.decode(ARGV[3])
redis.call('SET', KEYS[1], cjson.encode(record), 'KEEPTTL')
return 1
