"""GCRA (the generic cell rate algorithm) over several windows at once, with costs, refunds
and debts. Sans-IO: plain functions of (stored state, now); the stores keep the state.

A window allows `limit` units per `period_s`, with a burst of the whole limit. Its state is
one number, the theoretical arrival time (TAT): the time at which the window will be full
again. It is named by the window's kind and period alone, and stored with the interval
(`period_s / limit`) it was written with: when a reload changes the limit, the units used so
far carry over (`rescale`: 8 of 10 used are 8 of a new limit of 5, the window over its limit
until 3 units' time has passed; 10 of 10 are 10 of a new 100, 90 left). A cost `n` moves the
TAT forward by `n * period_s / limit`; it fits while the TAT stays within one period of now.
An admission over several windows (a per-minute and a per-day budget, requests and tokens of
the same key) is all-or-nothing: either every window takes its cost or none does. Settling
moves a TAT by a signed amount: a refund never lends more than a full window, a charge may
go past the period (a debt that later requests wait out).

The Redis backend runs the same arithmetic in a Lua script (`redis_store.py`); the tests hold
the two to the same results.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple


@dataclass(frozen=True)
class Window:
    limit: int          # units per period (requests, tokens or micro-units of currency)
    period_s: float
    #: what the units are when they are not requests ("tokens", "spend"): it is part of
    #: the suffix, so no two kinds of window of the same numbers share state
    unit: str = ""
    #: seconds one unit occupies (derived)
    interval: float = field(init=False, compare=False, repr=False)
    #: how far past the line an admission may land and still fit (derived, see tolerance)
    slack: float = field(init=False, compare=False, repr=False)
    #: what a store appends to a limit key to name this window's state (derived)
    suffix: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        interval = self.period_s / self.limit
        object.__setattr__(self, "interval", interval)
        object.__setattr__(self, "slack", max(1e-9, 1e-4 * interval))
        # named by kind and period, not by limit: a changed limit carries the units used
        # (`rescale`; lowering a limit or a budget by a reload never hands every key a
        # fresh one); tokens and spend name their unit, so no two kinds share state
        unit = f"{self.unit}:" if self.unit else ""
        object.__setattr__(self, "suffix", f"|{unit}per/{float(self.period_s)!r}")


class WindowState(NamedTuple):
    """What a window looks like after a decision, for the x-ratelimit-* headers."""

    window: Window
    remaining: int      # units that would still fit now
    reset_s: float      # seconds until the window is full again


class Outcome(NamedTuple):
    allowed: bool
    windows: tuple[WindowState, ...]
    retry_after_s: float = 0.0      # denied: when the same cost would fit (inf: never)


def tolerance(w: Window) -> float:
    """How far past the line an admission may land and still fit: a ten-thousandth of a
    unit (at least 1e-9 s), so float rounding in TATs built up by many additions never
    refuses the last unit of a burst."""
    return w.slack


def remaining(tat: float, w: Window, now: float) -> int:
    # the tolerance is in units (a thousandth of one): float steps in `now` and the TAT must
    # not turn 668 units left into 667.99999 and report 667
    return max(0, math.floor((now + w.period_s - max(tat, now)) / w.interval + 1e-3))


def admit(tats: Sequence[float], windows: Sequence[Window], costs: Sequence[float],
          now: float) -> tuple[Outcome, list[float]]:
    """Decide one admission; returns the outcome and the TATs to store (unchanged if denied)."""
    new: list[float] = []
    retry = 0.0
    for tat, w, cost in zip(tats, windows, costs, strict=True):
        base = max(tat, now)
        after = base + cost * w.interval
        eps = w.slack
        if cost * w.interval > w.period_s + eps:
            retry = math.inf                    # more than the whole window: never fits
        elif after - w.period_s > now + eps:
            retry = max(retry, after - w.period_s - now)
        new.append(after)
    allowed = retry == 0.0
    stored = new if allowed else list(tats)
    return Outcome(allowed, states(stored, windows, now), retry), stored


def states(tats: Sequence[float], windows: Sequence[Window], now: float
           ) -> tuple[WindowState, ...]:
    return tuple(WindowState(w, remaining(t, w, now), max(0.0, t - now))
                 for t, w in zip(tats, windows, strict=True))


def given_back(st: WindowState, cost: float) -> WindowState:
    """A window's state `st`, read as an admission of `cost` took it, once that admission is
    given back (a later limit refused the request): what the store then holds."""
    w = st.window
    reset = max(0.0, st.reset_s - cost * w.interval)
    return WindowState(w, remaining(reset, w, 0.0), reset)


def settle(tat: float, w: Window, delta: float, now: float) -> float:
    """Move a window by `delta` units: positive charges (may exceed the window: a debt),
    negative refunds (never below now, so a refund cannot lend more than a full window)."""
    moved = max(tat, now) + delta * w.interval
    return max(moved, now) if delta < 0 else moved


def expiry(tats: Sequence[float], now: float) -> float:
    """Seconds after which the stored state equals a fresh one (a TTL for the keys)."""
    return max(0.0, max(tats, default=now) - now)


def rescale(tat: float, old_interval: float | None, interval: float, now: float) -> float:
    """A TAT written by a window of `old_interval` (seconds per unit; None: unknown), as a
    window of `interval` reads it: the units used so far carry over when the limit changed
    (a reload), so a lowered limit or budget is never a fresh one and a raised one gives
    the difference."""
    if old_interval is None or old_interval <= 0 or old_interval == interval or tat <= now:
        return tat
    return now + (tat - now) * (interval / old_interval)
