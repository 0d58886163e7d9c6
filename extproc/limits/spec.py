"""`LimitSpec`: one entry of a route's `rate_limits:`, its windows by kind (requests, tokens,
spend in micro-units), and how one admission's amounts and window states line up with them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .gcra import Window, WindowState


@dataclass(frozen=True)
class LimitSpec:
    """One entry of a route's `rate_limits:` (spend windows count micro-units)."""

    name: str
    key: tuple[str, ...]
    requests: tuple[Window, ...] = ()
    tokens: tuple[Window, ...] = ()
    spend: tuple[Window, ...] = ()
    cut_streams: bool = False

    def __post_init__(self) -> None:
        # each kind's windows named by their unit, however the spec was made: windows of one
        # period but of two kinds must never share a stored state
        for kind, unit in (("tokens", "tokens"), ("spend", "spend")):
            windows = getattr(self, kind)
            if any(w.unit != unit for w in windows):
                object.__setattr__(self, kind, tuple(
                    w if w.unit == unit else Window(w.limit, w.period_s, unit)
                    for w in windows))

    @property
    def windows(self) -> tuple[Window, ...]:
        return self.requests + self.tokens + self.spend

    def amounts(self, requests: float, tokens: float, spend: float) -> list[float]:
        """One amount per window, by kind."""
        return [requests] * len(self.requests) + [tokens] * len(self.tokens) + \
            [spend] * len(self.spend)

    def split(self, states: Sequence[WindowState]) -> dict[str, list[WindowState]]:
        """A decision's window states by kind."""
        n, m = len(self.requests), len(self.requests) + len(self.tokens)
        return {"requests": list(states[:n]), "tokens": list(states[n:m]),
                "spend": list(states[m:])}
