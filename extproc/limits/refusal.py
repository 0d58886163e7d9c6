"""The 429 a rate, token or spend limit refuses a request with: the message naming the limit
and the window that refused it, `Retry-After`, and `x-should-retry: false` for a request
larger than a whole window, which no wait lets through (the OpenAI and Anthropic SDKs retry
a 429 unless told not to). Sans-IO."""

from __future__ import annotations

import math
from decimal import Decimal

from ..policy import Reject
from . import spending
from .gcra import Outcome, Window, WindowState, given_back
from .headers import KINDS, headers, period
from .spec import LimitSpec


def limited(spec: LimitSpec, outcome: Outcome, costs: list[float], cost: Decimal,
            currency: str, states: dict[str, list[WindowState]] | None = None) -> Reject:
    """The refusal of limit `spec`, whose admission (`outcome`) of `costs` (per window; the
    request's worst-case `cost` in money) failed; `states`: every window's state so far,
    for the `x-ratelimit-*` headers."""
    out = headers(states or {})
    kinds = [k for k in KINDS for _ in getattr(spec, k)]
    if math.isinf(outcome.retry_after_s):
        # the window the request can never fit in: it would be refused every time
        out["x-should-retry"] = "false"
        i = next(i for i, w in enumerate(spec.windows) if costs[i] > w.limit)
        w = spec.windows[i]
        if kinds[i] == "spend":
            message = (f"request may cost up to {spending.money(cost, round_up=True)} "
                       f"{currency}, more than the whole '{spec.name}' budget of "
                       f"{amount(w)} {currency} per {period(w.period_s)}")
        else:
            message = (f"request needs about {int(costs[i])} tokens, more than the whole "
                       f"'{spec.name}' budget of {w.limit} tokens per {period(w.period_s)}")
    else:
        denied = [i for i, st in enumerate(outcome.windows) if costs[i] > st.remaining]
        i = denied[0] if denied else 0
        w = spec.windows[i]
        out["retry-after"] = str(max(1, math.ceil(outcome.retry_after_s)))
        if kinds[i] == "spend":
            message = (f"spend limit '{spec.name}' exceeded: {amount(w)} {currency} per "
                       f"{period(w.period_s)}; retry after {out['retry-after']}s")
        else:
            message = (f"rate limit '{spec.name}' exceeded: {w.limit} {kinds[i]} per "
                       f"{period(w.period_s)}; retry after {out['retry-after']}s")
    return Reject(429, message, headers=out, details="extproc_ratelimited")


def refused_states(refusing: dict[str, list[WindowState]],
                   before: list[tuple[LimitSpec, tuple[WindowState, ...], list[float]]]
                   ) -> dict[str, list[WindowState]]:
    """Every window's state for a refusal's `x-ratelimit-*` headers: the refusing limit's as
    it read them, and those of the limits admitted `before` it (each with the states its
    admission showed and its costs) once their admissions are given back (found by review:
    a refused client was told the request it was refused had been counted)."""
    out = {kind: list(refusing[kind]) for kind in KINDS}
    for spec, states, costs in before:
        own = spec.split([given_back(st, c) for st, c in zip(states, costs, strict=True)])
        for kind in KINDS:
            out[kind].extend(own[kind])
    return out


def amount(w: Window) -> str:
    """A spend window's limit, in money."""
    return spending.money(w.limit, micro_units=True)
