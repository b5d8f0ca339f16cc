-- adapt.lua: adaptive request rate (AIMD), shared by every replica.
--
-- KEYS[1] state hash {ns}:rate:adaptive   rate (requests/s), latency (EWMA, ms), cut_ms
-- ARGV[1] now_ms ('' = Redis TIME)  ARGV[2] outcome: ok | throttled  ARGV[3] latency ms (ok)
-- ARGV[4] floor  ARGV[5] ceiling (LEVERS_MAX_REQUESTS_PER_SECOND)  ARGV[6] additive step
-- ARGV[7] multiplicative factor (< 1)
--
-- A success whose latency is within twice the running average raises the rate by the step;
-- a 429 or 503 multiplies it by the factor, at most once a second, so one burst of refusals
-- counts as one signal. The rate stays between floor and ceiling. Returns the new rate.
local now_ms = clock_ms(ARGV[1])
local floor, ceiling = tonumber(ARGV[4]), tonumber(ARGV[5])
local f = redis.call('HMGET', KEYS[1], 'rate', 'latency', 'cut_ms')
local rate = tonumber(f[1]) or ceiling
local latency = tonumber(f[2])
if ARGV[2] == 'ok' then
  local observed = tonumber(ARGV[3])
  if not latency or observed <= 2 * latency then
    rate = math.min(ceiling, rate + tonumber(ARGV[6]))
  end
  latency = latency and (0.9 * latency + 0.1 * observed) or observed
  redis.call('HSET', KEYS[1], 'rate', rate, 'latency', latency)
elseif now_ms - (tonumber(f[3]) or 0) >= 1000 then
  rate = math.max(floor, rate * tonumber(ARGV[7]))
  redis.call('HSET', KEYS[1], 'rate', rate, 'cut_ms', now_ms)
end
return tostring(rate)
