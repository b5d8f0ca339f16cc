-- Shared by every script (prepended when registered): the one clock of all replicas.
--
-- clock_ms(given): Redis's own TIME in ms, so replicas on hosts with skewed clocks agree on
-- every deadline, lease and rate-limit slot. Tests pass a fixed time instead (`given`, the
-- script's ARGV[1]); production passes ''.
local function clock_ms(given)
  if given ~= nil and given ~= '' then
    return tonumber(given)
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
