"""The Lua scripts of the Redis limits store (`redis_store`), one per operation: admit,
settle, and void an admission given up on. Redis runs a script alone, so each reads, decides
and writes all windows of one key atomically. The arithmetic is `gcra`'s, line for line; see
`redis_store` for the frame its clock runs in and how keys are named.
"""

from __future__ import annotations

MARGIN_MS = 1000        # keys outlive their window by this much
#: how long an allowed admission's mark lives: a void or give-back finds it for that long
#: (a void of an admission Redis ran late follows within seconds: it is tried until Redis
#: answers it; a give-back sent into a hang longer than this gives nothing)
MARK_MS = 30_000
#: how long a void's mark keeps an admission still on its way from running
VOID_MS = 600_000

COMMON = """
local t = redis.call('TIME')
local sec = tonumber(t[1])
local now = tonumber(t[2]) / 1000000
local n = math.floor(#ARGV / 3)             -- windows; KEYS[n + 1], if given, is the label
local maxttl = 0
local function read_tat(k, interval)        -- the TAT in the frame of `sec`, or now if absent
  local s = redis.call('GET', k)            -- (and whether a changed limit rescaled it)
  if not s then return now, false end
  local old = nil                           -- the interval it was written with ('tat/ival')
  local slash = string.find(s, '/', 1, true)
  if slash then
    old = tonumber(string.sub(s, slash + 1))
    s = string.sub(s, 1, slash - 1)
  end
  local tat
  local dot = string.find(s, '.', 1, true)
  if not dot then
    tat = (tonumber(s) or sec) - sec
  else
    tat = (tonumber(string.sub(s, 1, dot - 1)) - sec) + tonumber('0' .. string.sub(s, dot))
  end
  -- the limit changed since (a reload): the units used carry over (`gcra.rescale`)
  if old and old > 0 and old ~= interval then
    if tat > now then tat = now + (tat - now) * (interval / old) end
    return tat, true
  end
  return tat, false
end
local function write_tat(k, tat, interval)  -- TTL: gcra.expiry plus a margin
  local whole = math.floor(tat)
  local frac = string.format('%.15f', tat - whole)
  if string.sub(frac, 1, 1) == '1' then whole, frac = whole + 1, '0.000000000000000' end
  local ttl = math.ceil(math.max(0, tat - now) * 1000) + {margin}
  if ttl > maxttl then maxttl = ttl end
  redis.call('SET', k, string.format('%d', sec + whole) .. string.sub(frac, 2) .. '/' ..
             string.format('%.17g', interval), 'PX', string.format('%d', ttl))
end
local function write_label(at)              -- a spend limit's label lives as its windows do
  if #KEYS >= at and maxttl > 0 then          -- (KEYS[at], if given, with ARGV[3 * n + 1])
    local k = KEYS[at]
    local keep = redis.call('PTTL', k)
    if keep < maxttl then keep = maxttl end
    redis.call('SET', k, ARGV[3 * n + 1], 'PX', string.format('%d', keep))
  end
end
""".replace("{margin}", str(MARGIN_MS))

# the settlement of every window by its delta (the give-back of a negative one stops at now)
SETTLE_WINDOWS = """
for i = 1, n do
  local k = KEYS[i]
  local limit, period, delta = tonumber(ARGV[3 * i - 2]), tonumber(ARGV[3 * i - 1]),
                               tonumber(ARGV[3 * i])
  if delta ~= 0 then
    local interval = period / limit
    local tat = read_tat(k, interval)
    local moved = math.max(tat, now) + delta * interval
    if delta < 0 then moved = math.max(moved, now) end
    write_tat(k, moved, interval)
  end
end
"""

# KEYS: one per window, the admission's mark (+ the label's); ARGV: limit, period_s, cost per
# window (+ the label) -> {allowed, now, TATs read}, or {-1} for an admission voided before it
# ran. An allowed admission leaves its mark ('1') for MARK_MS: a void finds it and gives back
# what it took (`VOID`).
ADMIT = COMMON + """
local mark = KEYS[n + 1]
if redis.call('EXISTS', mark) == 1 then return {-1} end
local before, after, intervals, read, changed, allowed = {}, {}, {}, {}, {}, 1
for i = 1, n do
  local k = KEYS[i]
  local limit, period, cost = tonumber(ARGV[3 * i - 2]), tonumber(ARGV[3 * i - 1]),
                              tonumber(ARGV[3 * i])
  local interval = period / limit
  local tat, rescaled = read_tat(k, interval)
  local moved = math.max(tat, now) + cost * interval
  local eps = math.max(1e-9, 1e-4 * interval)      -- gcra.tolerance
  if cost * interval > period + eps or moved - period > now + eps then allowed = 0 end
  before[i], after[i], intervals[i], read[i], changed[i] =
    string.format('%.17g', tat), moved, interval, tat, rescaled
end
if allowed == 1 then
  for i = 1, n do write_tat(KEYS[i], after[i], intervals[i]) end
  write_label(n + 2)
  redis.call('SET', mark, '1', 'PX', '{mark_ms}')
else                                        -- a rescaled state is kept, or it would go on
  for i = 1, n do                           -- draining at the old limit's rate
    if changed[i] then write_tat(KEYS[i], read[i], intervals[i]) end
  end
end
return {allowed, string.format('%.17g', now), unpack(before)}
""".replace("{mark_ms}", str(MARK_MS))

# KEYS: one per window (+ the label's); ARGV: limit, period_s, delta per window (+ the label)
SETTLE = COMMON + SETTLE_WINDOWS + """
write_label(n + 1)
return 1
"""

# An admission the gateway gave up on (a timeout, a cancel) that Redis may run yet, or one
# whose reservation is given back (a refusal by a later limit, a request that never went
# upstream): KEYS: one per window, its mark; ARGV: limit, period_s, minus what to give back
# per window (+ 'ran': the admission is known to have run). Only a mark still '1' is given
# back, and it turns 'void' for the rest of its life (so tries of the same give-back, however
# late, give once; past its life a give-back gives nothing, never twice). A mark not there
# for an admission not known to have run becomes 'void' for VOID_MS: that admission, if it
# is still on its way, never runs. -> 1 given back, 0 nothing.
VOID = COMMON + """
local mark = KEYS[n + 1]
local state = redis.call('GET', mark)
if state == '1' then
  redis.call('SET', mark, 'void', 'KEEPTTL')
""" + SETTLE_WINDOWS + """
  return 1
end
if not state and ARGV[3 * n + 1] ~= 'ran' then
  redis.call('SET', mark, 'void', 'PX', '{void_ms}')
end
return 0
""".replace("{void_ms}", str(VOID_MS))
