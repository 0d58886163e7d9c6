"""Where limit state lives: the interface every backend implements, and the in-memory one.

A key names one limit for one descriptor value (say `openai/per-user/alice`); each of its
windows is stored under the key plus the window's shape, so changing a limit in the config
starts that window fresh. In memory, state is per process: with `--workers N` each worker
enforces its own budget (use Redis for one budget across workers and replicas). The event
loop runs one coroutine at a time and the memory store never awaits in between reading and
writing, so every admission is atomic.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

from . import gcra
from .gcra import Outcome, Window


class StoreUnavailable(Exception):
    """The backend could not answer (Redis down or slow); the policy applies its fail mode."""


class Store(Protocol):
    async def admit(self, key: str, windows: Sequence[Window], costs: Sequence[float]
                    ) -> Outcome: ...

    async def settle(self, key: str, windows: Sequence[Window], deltas: Sequence[float]
                     ) -> None: ...


def window_key(key: str, w: Window) -> str:
    return key + w.suffix


class MemoryStore:
    """TATs in a dict; entries that have drifted back to 'full' are swept as it grows."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        # seconds since the store was made: small numbers keep float steps far below the
        # arithmetic's tolerances (at the magnitude of a long uptime they are not)
        start = time.monotonic()
        self.clock = clock or (lambda: time.monotonic() - start)
        self._tats: dict[str, float] = {}
        self._sweep_at = 4096

    def __len__(self) -> int:
        return len(self._tats)

    async def admit(self, key: str, windows: Sequence[Window], costs: Sequence[float]
                    ) -> Outcome:
        return self.admit_now(key, windows, costs)

    def admit_now(self, key: str, windows: Sequence[Window], costs: Sequence[float]
                  ) -> Outcome:
        now = self.clock()
        keys = [key + w.suffix for w in windows]
        tats = [self._tats.get(k, now) for k in keys]
        outcome, stored = gcra.admit(tats, windows, costs, now)
        if outcome.allowed:
            for k, t in zip(keys, stored, strict=True):
                self._tats[k] = t
            self._maybe_sweep(now)
        return outcome

    async def settle(self, key: str, windows: Sequence[Window], deltas: Sequence[float]
                     ) -> None:
        now = self.clock()
        for w, d in zip(windows, deltas, strict=True):
            if d:
                k = window_key(key, w)
                self._tats[k] = gcra.settle(self._tats.get(k, now), w, d, now)
        self._maybe_sweep(now)

    def _maybe_sweep(self, now: float) -> None:
        if len(self._tats) < self._sweep_at:
            return
        self._tats = {k: t for k, t in self._tats.items() if t > now}
        self._sweep_at = max(4096, 2 * len(self._tats))
