"""Limit state in Redis: one budget for every worker and replica, exact under concurrency.

Each operation is one Lua script (`redis_scripts`; EVALSHA, and redis-py loads the script
again on NOSCRIPT, as after a Redis restart). Redis runs a script alone, so an admission
over all windows of a key reads, decides and writes atomically: concurrent requests from any
number of replicas are serialised, none is lost and none slips past the limit.

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
multi-key scripts legal on a cluster: f"{prefix}{{{sha1(key)[:20]}}}:per/{period}" for a
request window, `...:tokens:per/{period}` and `...:spend:per/{period}` for the others (named
by kind and period, not by limit: `gcra.Window.suffix`), so no two kinds share state. A
spend limit's admissions and settlements also write its label (`...}:label`, JSON: see
`budgets`) under the same hash tag, living as long as the longest of its windows;
`spend_budgets` finds the labels with SCAN.

Failures are fast and never retried (a retried script could charge twice): every socket step
has `timeout_s`, the whole call at most twice that, and any Redis error, refusal or timeout
becomes StoreUnavailable with a one-line reason. The pool replaces dead connections when it
hands them out, so once Redis is back the next call works on the same store.

An admission given up on (a timeout, a lost connection, a cancel) may yet be run by Redis.
Each admission carries a mark key of its own (its `ticket`, the same hash tag); an allowed one
sets it to '1' for `redis_scripts.MARK_MS`. The store then voids it in a Task
(`redis_scripts.VOID`, tried until Redis answers it): a void gives back what a marked
admission took and turns its mark 'void', so a second gives nothing, and marks an admission
not there yet so that it never runs. A give-back of an admission known to have run
(`give_back`: a refusal by a later limit, a request that never went upstream) is its void
too, tried while its mark lives: a settlement lost to a timeout could not be tried again
without the risk of giving twice.
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
from .redis_scripts import ADMIT, MARK_MS, SETTLE, VOID
from .store import Label, StoreUnavailable

log = logging.getLogger("extproc.limits")

#: the waits before a void's next tries, then every VOID_EVERY_S until Redis answers it
VOID_RETRIES = (0.25, 1.0, 3.0)
VOID_EVERY_S = 5.0
#: voids pending at once; past it one is dropped (logged): Redis is then down or hung anyway
MAX_VOIDS = 1024


class RedisStore:
    """The Store interface over one Redis connection pool."""

    #: its calls wait on Redis (`Policy.finish_waits`)
    waits = True
    #: a give-back by ticket works while the admission's mark lives: with room for its tries
    give_back_s = MARK_MS / 1000 - 10

    def __init__(self, url: str, timeout_s: float = 0.05, prefix: str = "extproc:rl:") -> None:
        self.prefix = prefix
        self.timeout_s = timeout_s
        self._redis = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0), health_check_interval=30)
        self._admit = self._redis.register_script(ADMIT)
        self._settle = self._redis.register_script(SETTLE)
        self._void_script = self._redis.register_script(VOID)
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

    def _mark(self, tag: str, ticket: str) -> str:
        """The key of an admission's mark (`redis_scripts`), beside its windows."""
        return f"{self.prefix}{{{tag}}}:admission:{ticket}"

    def ticket(self) -> str:
        """A new admission's id (its mark's name), for `give_back`."""
        return os.urandom(8).hex()

    async def admit(self, key: str, windows: Sequence[Window], costs: Sequence[float],
                    label: Label | None = None, ticket: str | None = None) -> Outcome:
        tag = _tag(key)
        windows_keys, args = self._keys(tag, windows), _args(windows, costs)
        mark = self._mark(tag, ticket or self.ticket())
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

    async def give_back(self, key: str, windows: Sequence[Window], costs: Sequence[float],
                        label: Label | None = None, ticket: str | None = None) -> None:
        """Give back `costs` (what the allowed admission `ticket` took, or part of it),
        once: its void (`redis_scripts.VOID`), tried again in the background, while the
        admission's mark lives, when this try gets no answer (a settlement, which could not
        be tried again, would leave it charged: found by review). Only for a ticket that
        was allowed. Without a ticket, a settlement of minus `costs`. Never raises
        StoreUnavailable; a cancel, after scheduling the void."""
        if ticket is None:
            await self.settle(key, windows, [-c for c in costs], label)
            return
        tag = _tag(key)
        keys = [*self._keys(tag, windows), self._mark(tag, ticket)]
        args = [*_args(windows, [-c for c in costs]), "ran"]
        try:
            await self._call(self._void_script, keys, args)
        except BaseException as exc:
            # (past the mark's life a give-back gives nothing: no use trying it after that)
            self._void_later(keys, args, time.monotonic() + MARK_MS / 1000)
            if not isinstance(exc, StoreUnavailable):
                raise

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

    def _void_later(self, keys: list[str], args: list[str], until: float | None = None
                    ) -> None:
        """Void an admission, in a Task of its own (`redis_scripts.VOID`), tried until Redis
        answers it or, if given, the monotonic time `until` passes."""
        if len(self._voids) >= MAX_VOIDS:
            now = time.monotonic()
            if now - self._dropped_logged >= 60:
                self._dropped_logged = now
                log.warning("redis: %d admissions the gateway gave up on are being voided "
                            "already; one more is not: if Redis runs it, its reservation "
                            "stays charged until its window passes", MAX_VOIDS)
            return
        task = asyncio.get_running_loop().create_task(self._void(keys, args, until))
        self._voids.add(task)
        task.add_done_callback(self._voids.discard)

    async def _void(self, keys: list[str], args: list[str], until: float | None) -> None:
        """Try the void until Redis answers it: a try on a new connection while Redis hangs
        never reaches it, while the admission, sent on an open one, runs once Redis is back
        (found by review: tries that ended after 10 s left it charged)."""
        waits, waited, warned = iter(VOID_RETRIES), 0.0, False
        while True:
            try:
                given = await self._call(self._void_script, keys, args)
                break
            except StoreUnavailable:
                wait = next(waits, VOID_EVERY_S)
                if until is not None and time.monotonic() + wait > until:
                    log.warning("redis: a give-back had no answer while its admission's mark "
                                "lived (%.0f s): that reservation stays charged until its "
                                "window passes", MARK_MS / 1000)
                    return
                await asyncio.sleep(wait)
                waited += wait
                if waited >= 10 and not warned:
                    warned = True
                    log.warning("redis: no answer for %.0f s to the void of an admission the "
                                "gateway gave up on; trying on every %.0f s", waited,
                                VOID_EVERY_S)
        if int(given):
            log.info("redis: gave back an admission the gateway had given up on or refused")

    async def close(self) -> None:
        """Let pending voids finish (a second at most: one Redis still does not answer is
        given up, logged), then close the pool."""
        if self._voids:
            _, pending = await asyncio.wait(set(self._voids), timeout=1.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if pending:
                log.warning("redis: %d voids of admissions the gateway gave up on had no "
                            "answer at shutdown: if Redis runs those admissions, they stay "
                            "charged until their windows pass", len(pending))
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
