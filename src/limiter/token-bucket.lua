-- Token bucket, one HASH per bucket: { tokens = <float>, last = <ms> }.
-- KEYS[1] = bucket key (meter:rl:{<bucket>}: the hash tag keeps it on one Cluster slot)
-- ARGV = rate (tokens/s), burst, cost, now[, count (default 1)]
--   now = -1: the clock is Redis's own (TIME), the default of redis-limiter.ts
--   now >= 0: epoch ms from the caller (tests that drive a fake clock; the in-process limiter
--             memory-limiter.ts computes exactly the same numbers with the same formula)
--
-- Why Redis's clock: every gateway then refills a bucket by one clock. With each caller's own
-- clock, two gateways a few seconds apart disagree on `last`: the one behind gets no refill until
-- its clock passes the other's (test/stack/limiter-clock-skew.test.ts measures it). TIME makes a script
-- non-deterministic, which Redis allows once scripts are replicated by their effects (the writes
-- they make, not the script text): the default since Redis 5 and the only mode in Redis 7 (the
-- stack's Debian redis-server is 7.0). No redis.replicate_commands() is needed (it is a no-op
-- in Redis 7). Replicas receive the HSET of the result, so they hold the same state.
--
-- count > 1 decides that many takes of `cost`, one after the other at the same `now`, exactly as
-- `count` separate calls would (the gateway coalesces concurrent calls on one bucket: one round
-- trip for all of them).
--
-- Returns, per take, { allowed (0|1), remaining (floored), ms until full, ms until `cost` is available }.
local key = KEYS[1]
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local count = tonumber(ARGV[5] or '1')
if not rate or rate <= 0 or not burst or burst <= 0 or not cost or cost < 0 or not now or (now < 0 and now ~= -1) or
    not count or count < 1 or count > 1000 or count ~= math.floor(count) then
  return redis.error_reply('ERR token-bucket: bad arguments rate=' .. tostring(ARGV[1]) ..
    ' burst=' .. tostring(ARGV[2]) .. ' cost=' .. tostring(ARGV[3]) .. ' now=' .. tostring(ARGV[4]) ..
    ' count=' .. tostring(ARGV[5]))
end
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local state = redis.call('HMGET', key, 'tokens', 'last')
local tokens = tonumber(state[1])
local last = tonumber(state[2])
if tokens == nil or last == nil then
  tokens = burst
  last = now
end

local out = {}
for i = 1, count do
  local elapsed = now - last
  if elapsed < 0 then elapsed = 0 end
  local filled = tokens + elapsed * rate / 1000
  if filled > burst then filled = burst end

  local allowed = 0
  local left = filled
  local wait = 0
  if filled >= cost then
    allowed = 1
    left = filled - cost
  else
    wait = math.ceil((cost - filled) * 1000 / rate)
  end
  -- A clock that went backwards (another gateway host) must not rewind the bucket.
  if now > last then last = now end
  tokens = left
  local n = #out
  out[n + 1] = allowed
  out[n + 2] = math.floor(left)
  out[n + 3] = math.ceil((burst - left) * 1000 / rate)
  out[n + 4] = wait
end

-- %.17g round-trips a double exactly, so the next call sees the same number the JS limiter would.
redis.call('HSET', key, 'tokens', string.format('%.17g', tokens), 'last', string.format('%.17g', last))
redis.call('PEXPIRE', key, math.ceil(burst / rate * 1000) * 2)

return out
