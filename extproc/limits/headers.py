"""What a rate-limit decision tells the client and the access log (sans-IO): OpenAI's
`x-ratelimit-*` headers for the tightest window of each kind, and the decision's summary.

Kinds: `requests` and `tokens` (counts), and `spend` (`x-ratelimit-limit-spend` and
`x-ratelimit-remaining-spend` are decimal amounts in the config's currency, "25.00";
`x-ratelimit-reset-spend` a duration like the others). The summary is JSON-ready:
`decision`, `limit`, `remaining_requests` / `remaining_tokens` (ints), `remaining_spend`
(a decimal string, as in the header), `reserved_tokens` (int) and `reserved_spend`
(a decimal string).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .gcra import WindowState
from .spending import money

KINDS = ("requests", "tokens", "spend")


def tightness(s: WindowState) -> tuple[float, float]:
    """Orders windows by how close they are to refusing: the smallest share left, then the
    longest wait."""
    return (s.remaining / s.window.limit, -s.reset_s)


def tightest(states: list[WindowState]) -> WindowState:
    return min(states, key=tightness)


def amount(kind: str, units: int) -> str:
    """A count of a window's units as the headers write it."""
    return money(units, micro_units=True) if kind == "spend" else str(units)


def headers(states: Mapping[str, list[WindowState]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for kind in KINDS:
        if not states.get(kind):
            continue
        tight = tightest(states[kind])
        out[f"x-ratelimit-limit-{kind}"] = amount(kind, tight.window.limit)
        out[f"x-ratelimit-remaining-{kind}"] = amount(kind, tight.remaining)
        out[f"x-ratelimit-reset-{kind}"] = duration(tight.reset_s)
    return out


def summary(decision: str, limit: str | None, states: Mapping[str, list[WindowState]],
            reserved: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The decision as plain JSON values: which limit decided and what is left of the
    tightest windows (what the x-ratelimit-remaining-* headers say), and what the request
    reserved (`reserved_tokens`, `reserved_spend`)."""
    out: dict[str, Any] = {"decision": decision, "limit": limit}
    for kind in KINDS:
        if states.get(kind):
            remaining = tightest(states[kind]).remaining
            out[f"remaining_{kind}"] = amount(kind, remaining) if kind == "spend" \
                else remaining
    for name, value in (reserved or {}).items():
        out[f"reserved_{name}"] = value
    return out


def duration(seconds: float) -> str:
    """OpenAI's reset format: 17ms, 1s, 6m0s, 1h2m3s (Go's time.Duration style)."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    total = round(seconds, 3)
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    sec = f"{s:.3f}".rstrip("0").rstrip(".") + "s"
    if h:
        return f"{int(h)}h{int(m)}m{sec}"
    if m:
        return f"{int(m)}m{sec}"
    return sec


def period(seconds: float) -> str:
    """A window's period as the config writes it: 1m, 1h, 1d, 30s."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
