"""Where limit state lives: the interface every backend implements, and the in-memory one.

A key names one limit for one descriptor value (say `openai/per-user/alice`); each of its
windows is stored under the key plus the window's kind and period, with the interval it was
written with, so a limit changed in the config carries the units used (`gcra.rescale`) and a
changed period starts that window fresh. In memory, state is per process: with `--workers N`
each worker enforces its own budget (use Redis for one budget across workers and replicas).
The event loop runs one coroutine at a time and the memory store never awaits in between
reading and writing, so every admission is atomic.

A spend limit's admissions and settlements carry its `label` (route, limit name, descriptor
values, currency, spend windows: see `budgets`), which the store keeps as long as the
windows' state so `GET /spend` and `extproc spend` can list and name every spend budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from . import budgets, gcra
from .gcra import Outcome, Window

Label = Mapping[str, Any]


class StoreUnavailable(Exception):
    """The backend could not answer (Redis down or slow); the policy applies its fail mode."""


class Store(Protocol):
    #: how long after an admission `give_back` can give it back (then settle instead)
    give_back_s: float

    def ticket(self) -> str | None:
        """An id for the next admission, for `give_back` (None: the store needs none)."""
        ...

    async def admit(self, key: str, windows: Sequence[Window], costs: Sequence[float],
                    label: Label | None = None, ticket: str | None = None) -> Outcome: ...

    async def give_back(self, key: str, windows: Sequence[Window], costs: Sequence[float],
                        label: Label | None = None, ticket: str | None = None) -> None:
        """Give back what the allowed admission `ticket` of `costs` took, exactly once."""
        ...

    async def settle(self, key: str, windows: Sequence[Window], deltas: Sequence[float],
                     label: Label | None = None) -> None: ...

    async def spend_budgets(self) -> list[dict[str, Any]]:
        """Every spend budget the store holds state for (`budgets.rows`)."""
        ...


def window_key(key: str, w: Window) -> str:
    return key + w.suffix


class MemoryStore:
    """TATs in a dict; entries that have drifted back to 'full' are swept as it grows."""

    #: its calls never wait (`Policy.finish_waits`)
    waits = False
    #: a give-back is a settlement here, however late
    give_back_s = float("inf")

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        # seconds since the store was made: small numbers keep float steps far below the
        # arithmetic's tolerances (at the magnitude of a long uptime they are not)
        start = time.monotonic()
        self.clock = clock or (lambda: time.monotonic() - start)
        self._tats: dict[str, float] = {}
        self._intervals: dict[str, float] = {}   # what each TAT was written with
        self._labels: dict[str, Label] = {}
        self._sweep_at = 4096

    def __len__(self) -> int:
        return len(self._tats)

    def ticket(self) -> None:
        return None

    async def admit(self, key: str, windows: Sequence[Window], costs: Sequence[float],
                    label: Label | None = None, ticket: str | None = None) -> Outcome:
        return self.admit_now(key, windows, costs, label)

    async def give_back(self, key: str, windows: Sequence[Window], costs: Sequence[float],
                        label: Label | None = None, ticket: str | None = None) -> None:
        await self.settle(key, windows, [-c for c in costs], label)

    def admit_now(self, key: str, windows: Sequence[Window], costs: Sequence[float],
                  label: Label | None = None) -> Outcome:
        now = self.clock()
        keys = [key + w.suffix for w in windows]
        tats = [self._tat(k, w, now) for k, w in zip(keys, windows, strict=True)]
        outcome, stored = gcra.admit(tats, windows, costs, now)
        if outcome.allowed:
            for k, t, w in zip(keys, stored, windows, strict=True):
                self._tats[k] = t
                self._intervals[k] = w.interval
            if label is not None:
                self._labels[key] = label
            self._maybe_sweep(now)
        else:   # a window read at another limit keeps its rescaled state, or it would go on
            for k, t, w in zip(keys, tats, windows, strict=True):   # draining at the old rate
                if k in self._tats and self._intervals.get(k, w.interval) != w.interval:
                    self._tats[k] = t
                    self._intervals[k] = w.interval
        return outcome

    async def settle(self, key: str, windows: Sequence[Window], deltas: Sequence[float],
                     label: Label | None = None) -> None:
        now = self.clock()
        if label is not None:
            self._labels[key] = label
        for w, d in zip(windows, deltas, strict=True):
            if d:
                k = window_key(key, w)
                self._tats[k] = gcra.settle(self._tat(k, w, now), w, d, now)
                self._intervals[k] = w.interval
        self._maybe_sweep(now)

    def _tat(self, k: str, w: Window, now: float) -> float:
        """The window's TAT (now when it has none), its units carried over a changed limit."""
        tat = self._tats.get(k)
        if tat is None:
            return now
        return gcra.rescale(tat, self._intervals.get(k), w.interval, now)

    def _maybe_sweep(self, now: float) -> None:
        if len(self._tats) < self._sweep_at:
            return
        self._tats = {k: t for k, t in self._tats.items() if t > now}
        self._intervals = {k: i for k, i in self._intervals.items() if k in self._tats}
        # a label lives while one of its windows does (found by review: a drained window
        # reads None here, and comparing it failed every admission and settlement of the
        # process once the store held 4096 windows and one spend budget had gone idle)
        self._labels = {k: v for k, v in self._labels.items()
                        if any(t is not None and t > now for t in self._spend_tats(k, v))}
        self._sweep_at = max(4096, 2 * len(self._tats))

    def _spend_tats(self, key: str, label: Label) -> list[float | None]:
        now = self.clock()
        return [self._tat(key + w.suffix, w, now) if key + w.suffix in self._tats else None
                for w in budgets.windows(label)]

    async def spend_budgets(self) -> list[dict[str, Any]]:
        now = self.clock()
        out: list[dict[str, Any]] = []
        for key, label in list(self._labels.items()):
            tats = self._spend_tats(key, label)
            if all(t is None or t <= now for t in tats):
                del self._labels[key]          # full again: nothing to report
                continue
            out += budgets.rows(label, tats, now)
        return out
