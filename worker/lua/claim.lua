-- claim.lua: take one given batch for a send attempt, under a lease (see lease.lua).
--
-- KEYS[1] batch record {ns}:batch:{id}   KEYS[2] inflight zset {ns}:inflight
-- ARGV[1] now_ms  ARGV[2] batch id  ARGV[3] lease_ms  ARGV[4] owner (attempt token)
-- ARGV[5] 1 to claim a batch whose previous attempt's outcome is unknown, else 0
--
-- Returns what try_claim returns.
return try_claim(KEYS[1], KEYS[2], ARGV[2], tonumber(ARGV[1]), tonumber(ARGV[3]), ARGV[4],
                 ARGV[5])
