"""Limit state in Redis: one budget for every worker and replica, exact under concurrency.

Each operation is one Lua script (EVALSHA; redis-py loads the script again on NOSCRIPT, as
after a Redis restart). Redis runs a script alone, so an admission over all windows of a key
reads, decides and writes atomically: concurrent requests from any number of replicas are
serialised, none is lost and none slips past the limit.

The scripts are gcra.admit and gcra.settle line for line (the same float operations in the
same order, the same tolerances). `now` is Redis's own clock (TIME), so replicas with
skewed clocks agree. The arithmetic runs in a frame that starts at TIME's whole second:
`now` is the microseconds part (below 1) and a TAT is its distance from that second. At the
magnitude of Unix time a float's step is 2.4e-7 s, far coarser than gcra's tolerances (the
remaining count would come out one short for about a third of the windows over 1000/hour);
in the frame it is as fine as for a clock that started a moment ago. A TAT is stored as a
decimal string of Unix seconds with 15 fractional digits (say `1764163549.250000000000000`)
and read back in two parts, whole seconds and fraction, so nothing is lost on the way.

admit returns the frame's `now` and the TATs it read; the Outcome is then built by gcra.admit
itself from exactly those numbers, so the decision, the remaining counts, reset and
retry-after are gcra's by construction. A denied admission writes nothing.

Every key lives as long as its window needs (gcra.expiry, here per key) plus a margin, so idle
keys vanish. All windows of one limit key share a Redis Cluster hash tag, which makes the
multi-key scripts legal on a cluster: f"{prefix}{{{sha1(key)[:20]}}}:{limit}/{period}"
(a spend window's name has its unit: `...:spend:{limit}/{period}`, so it never shares state
with a token window of the same numbers). A spend limit's admissions and settlements also
write its label (`...}:label`, JSON: see `budgets`) under the same hash tag, living as long
as the longest of its windows; `spend_budgets` finds the labels with SCAN.

Failures are fast and never retried (a retried script could charge twice): every socket step
has `timeout_s`, the whole call at most twice that, and any Redis error, refusal or timeout
becomes StoreUnavailable with a one-line reason. The pool replaces dead connections when it
hands them out, so once Redis is back the next call works on the same store.

An admission given up on (a timeout, a lost connection, a cancel) may yet be run by Redis.
Each admission carries a mark key of its own (a random id, the same hash tag); an allowed one
sets it for `MARK_MS`. The store then voids it in a Task (`_VOID`, tried again on
`VOID_RETRIES`): the void gives back what a marked admission took and marks it void, so a
second void gives nothing and an admission that reaches Redis after its void never runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from . import budgets, gcra
from .gcra import Outcome, Window
from .store import Label, StoreUnavailable

log = logging.getLogger("extproc.limits")

MARGIN_MS = 1000        # keys outlive their window by this much
#: how long an allowed admission's mark lives, for a void to find it (`_VOID`)
MARK_MS = 30_000
#: how long a void's mark keeps an admission still on its way from running
VOID_MS = 600_000
#: when a void is tried again after its first try fails (seconds after the first try)
VOID_RETRIES = (0.25, 1.0, 3.0, 10.0)
#: voids pending at once; past it one is dropped (logged): Redis is then down or hung anyway
MAX_VOIDS = 256

_COMMON = """
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
_SETTLE_WINDOWS = """
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
# what it took (`_VOID`).
_ADMIT = _COMMON + """
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
_SETTLE = _COMMON + _SETTLE_WINDOWS + """
write_label(n + 1)
return 1
"""

# An admission the gateway gave up on (a timeout, a cancel) that Redis may run yet: KEYS: one
# per window, its mark; ARGV: limit, period_s, minus its cost per window. Marks it void (an
# admission that has not run yet then never does) and, if it ran and was allowed, gives back
# what it took, once: -> 1 given back, 0 nothing to give back.
_VOID = _COMMON + f"""
local mark = KEYS[n + 1]
local state = redis.call('GET', mark)
redis.call('SET', mark, 'void', 'PX', '{VOID_MS}')
if state ~= '1' then return 0 end
""" + _SETTLE_WINDOWS + """
return 1
"""


class RedisStore:
    """The Store interface over one Redis connection pool."""

    #: its calls wait on Redis (`Policy.finish_waits`)
    waits = True

    def __init__(self, url: str, timeout_s: float = 0.05, prefix: str = "extproc:rl:") -> None:
        self.prefix = prefix
        self.timeout_s = timeout_s
        self._redis = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0), health_check_interval=30)
        self._admit = self._redis.register_script(_ADMIT)
        self._settle = self._redis.register_script(_SETTLE)
        self._void_script = self._redis.register_script(_VOID)
        self._voids: set[asyncio.Task[None]] = set()
        self._dropped_logged = -60.0

    def keys(self, key: str, windows: Sequence[Window]) -> list[str]:
        return self._keys(_tag(key), windows)

    def _keys(self, tag: str, windows: Sequence[Window]) -> list[str]:
        # by kind and period, not limit (`gcra.Window.suffix`): a changed limit carries the
        # units used (each value says the interval it was written with)
        return [f"{self.prefix}{{{tag}}}:{w.unit + ':' if w.unit else ''}"
                f"per/{w.period_s:.17g}" for w in windows]

    def label_key(self, key: str) -> str:
        return f"{self.prefix}{{{_tag(key)}}}:label"

    async def admit(self, key: str, windows: Sequence[Window], costs: Sequence[float],
                    label: Label | None = None) -> Outcome:
        tag = _tag(key)
        windows_keys, args = self._keys(tag, windows), _args(windows, costs)
        mark = f"{self.prefix}{{{tag}}}:admission:{os.urandom(8).hex()}"
        keys = [*windows_keys, mark]
        if label is not None:
            keys.append(self.label_key(key))
            args.append(_json(label))
        try:
            reply = await self._call(self._admit, keys, args)
        except BaseException:
            # a timeout, a lost connection, a cancel: Redis may have run it, or may run it
            # yet, for a request that was refused or went on unmetered (found by review: its
            # whole reservation stayed charged)
            self._void_later([*windows_keys, mark], _args(windows, [-c for c in costs]))
            raise
        if int(reply[0]) < 0:                    # cannot happen: voided only once given up
            raise StoreUnavailable("redis: the admission was voided before it ran")
        now, tats = float(reply[1]), [float(t) for t in reply[2:]]
        outcome, _ = gcra.admit(tats, windows, costs, now)
        if outcome.allowed != bool(int(reply[0])):     # cannot happen: same arithmetic
            raise StoreUnavailable("redis: the script and gcra.admit disagree")
        return outcome

    async def settle(self, key: str, windows: Sequence[Window], deltas: Sequence[float],
                     label: Label | None = None) -> None:
        if any(deltas):
            keys, args = self.keys(key, windows), _args(windows, deltas)
            if label is not None:
                keys.append(self.label_key(key))
                args.append(_json(label))
            await self._call(self._settle, keys, args)

    async def spend_budgets(self) -> list[dict[str, Any]]:
        """Every spend budget with state in Redis: the labels the admission script wrote
        (found with SCAN, one node of a cluster), each window read with the label's own hash
        tag (legal on a cluster), at Redis's clock. An admin command: no timeout of its own
        beyond the socket's."""
        out: list[dict[str, Any]] = []
        try:
            async for raw in self._redis.scan_iter(match=f"{self.prefix}*:label", count=500):
                name = raw.decode() if isinstance(raw, bytes) else raw
                tag = name[len(self.prefix) + 1:name.index("}")]
                text = await self._redis.get(name)
                if text is None:
                    continue                     # expired since the scan saw it
                lab = json.loads(text)
                wins = budgets.windows(lab)
                stored = await self._redis.mget(self._keys(tag, wins)) if wins else []
                sec, usec = await self._redis.time()
                now = sec + usec / 1e6
                tats = [None if t is None else _stored_tat(t, w.interval, now)
                        for t, w in zip(stored, wins, strict=True)]
                if all(t is None or t <= now for t in tats):
                    continue
                out += budgets.rows(lab, tats, now)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {type(exc).__name__}: {exc}") from None
        return out

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(2 * self.timeout_s):
                return bool(await self._redis.ping())
        except (RedisError, OSError, TimeoutError):
            return False

    def _void_later(self, keys: list[str], args: list[str]) -> None:
        """Void an admission the gateway gave up on, in a Task of its own (`_VOID`)."""
        if len(self._voids) >= MAX_VOIDS:
            now = time.monotonic()
            if now - self._dropped_logged >= 60:
                self._dropped_logged = now
                log.warning("redis: %d admissions the gateway gave up on are being voided "
                            "already; one more is not: if Redis runs it, its reservation "
                            "stays charged until its window passes", MAX_VOIDS)
            return
        task = asyncio.get_running_loop().create_task(self._void(keys, args))
        self._voids.add(task)
        task.add_done_callback(self._voids.discard)

    async def _void(self, keys: list[str], args: list[str]) -> None:
        waited = 0.0
        for at in (0.0, *VOID_RETRIES):
            await asyncio.sleep(at - waited)
            waited = at
            try:
                given = await self._call(self._void_script, keys, args)
            except StoreUnavailable:
                continue
            if int(given):
                log.info("redis: gave back an admission Redis ran after the gateway had "
                         "given up on it")
            return
        log.warning("redis: could not void an admission the gateway gave up on (no answer "
                    "in %.0f s): if Redis ran it, its reservation stays charged until its "
                    "window passes", waited)

    async def close(self) -> None:
        """Let pending voids finish (a second at most), then close the pool."""
        if self._voids:
            _, pending = await asyncio.wait(set(self._voids), timeout=1.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self._redis.aclose()

    async def _call(self, script: AsyncScript, keys: list[str], args: list[str]) -> Any:
        try:
            async with asyncio.timeout(2 * self.timeout_s):
                return await script(keys=keys, args=args)
        except TimeoutError:
            raise StoreUnavailable(f"redis: no answer within {2 * self.timeout_s:g}s "
                                   "(twice timeout_ms)") from None
        except (RedisError, OSError) as exc:
            reason = " ".join(str(exc).split())[:160] or "no detail"
            raise StoreUnavailable(f"redis: {type(exc).__name__}: {reason}") from None


def _stored_tat(raw: bytes | str, interval: float, now: float) -> float:
    """A stored TAT (`tat/interval`, as the scripts write it) read as a window of
    `interval` reads it (`gcra.rescale`)."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    tat, _, old = text.partition("/")
    return gcra.rescale(float(tat), float(old) if old else None, interval, now)


def _tag(key: str) -> str:
    return hashlib.sha1(key.encode()).hexdigest()[:20]


def _json(label: Label) -> str:
    return json.dumps(label, separators=(",", ":"), sort_keys=True)


def _args(windows: Sequence[Window], amounts: Sequence[float]) -> list[str]:
    out: list[str] = []
    for w, n in zip(windows, amounts, strict=True):
        out += [str(w.limit), repr(float(w.period_s)), repr(float(n))]
    return out
