-- Token bucket, one HASH per bucket: { tokens = <float>, last = <ms> }.
-- KEYS[1] = bucket key (meter:rl:{<bucket>}: the hash tag keeps it on one Cluster slot)
-- ARGV = rate (tokens/s), burst, cost, now (epoch ms from the CALLER)[, count (default 1)]
--
-- The caller passes the clock instead of the script calling TIME: scripts that read TIME
-- needed redis.replicate_commands() before Redis 5 and that function is gone in Redis 7;
-- some managed Redis services restrict it too. With the clock as an argument the script is
-- deterministic (safe to replicate verbatim), tests control time, and the in-process limiter
-- (memory-limiter.ts) computes exactly the same numbers with the same formula.
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
if not rate or rate <= 0 or not burst or burst <= 0 or not cost or cost < 0 or not now or
    not count or count < 1 or count > 1000 or count ~= math.floor(count) then
  return redis.error_reply('ERR token-bucket: bad arguments rate=' .. tostring(ARGV[1]) ..
    ' burst=' .. tostring(ARGV[2]) .. ' cost=' .. tostring(ARGV[3]) .. ' now=' .. tostring(ARGV[4]) ..
    ' count=' .. tostring(ARGV[5]))
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
