"""Spend budgets read back (sans-IO): the label a spend limit's key is stored with, and from
the stored state one row per spend window with what was spent and what remains, for the
admin endpoint `GET /spend` and the `extproc spend` command.

A label names a key the way people read it (the key itself may be hashed)::

    {"route": "chat", "limit": "team-daily", "key": {"claim:team": "ml"},
     "currency": "USD", "windows": [[25000000, 86400.0]]}

`windows` are the limit's spend windows, in micro-units per period. A row says, for one
window: the budget, `spent` (the spend still counted against it: GCRA refills continuously,
so it is what the last `per` charged, less what has drained since; it exceeds the budget
while a settled overshoot is a debt), `remaining` (what a request may still cost now) and
`reset_s` (seconds until the budget is whole again); amounts are decimal strings in the
currency.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from . import gcra
from .gcra import Window
from .headers import period
from .keys import escape
from .spending import money

UNIT = "spend"


#: the longest key value a label shows (a `header:` value can be kilobytes; the bucket's
#: key itself is hashed past 200 characters, `keys.limit_key`): what is kept as long as the
#: spend windows are, in memory or in Redis, per bucket
MAX_LABEL_VALUE = 128


def _shown(value: str) -> str:
    return value if len(value) <= MAX_LABEL_VALUE else value[:MAX_LABEL_VALUE - 1] + "\u2026"


def label(route: str, limit: str, descriptors: Sequence[str], values: Sequence[str],
          currency: str, windows: Sequence[Window]) -> dict[str, Any]:
    """The label of a spend limit's bucket. Its key values are the key's own parts (escaped:
    `keys.escape`), so two buckets never show alike: an absent claim is `\\-`, the string
    claim `\\-` is `\\\\-` (found by review: both showed `\\-`)."""
    return {"route": route, "limit": limit,
            "key": dict(zip(descriptors, (_shown(escape(v)) for v in values), strict=True)),
            "currency": currency,
            "windows": [[w.limit, float(w.period_s)] for w in windows if w.unit == UNIT]}


def windows(lab: Mapping[str, Any]) -> list[Window]:
    return [Window(int(limit), float(period), UNIT) for limit, period in lab["windows"]]


def rows(lab: Mapping[str, Any], tats: Sequence[float | None], now: float
         ) -> list[dict[str, Any]]:
    """One row per spend window of the label; a TAT of None is a window never charged."""
    out = []
    for w, tat in zip(windows(lab), tats, strict=True):
        t = now if tat is None else max(tat, now)
        spent = round((t - now) / w.interval)
        out.append({"route": lab["route"], "limit": lab["limit"], "key": dict(lab["key"]),
                    "currency": lab["currency"], "per": period(w.period_s),
                    "budget": money(w.limit, micro_units=True),
                    "spent": money(spent, micro_units=True),
                    "remaining": money(gcra.remaining(t, w, now), micro_units=True),
                    "reset_s": round(t - now, 3)})
    out.sort(key=lambda r: (r["route"], r["limit"], sorted(r["key"].items())))
    return out


def table(found: Sequence[Mapping[str, Any]], configured: int | None = None) -> str:
    """The rows as a text table (what `extproc spend` prints); `configured`: how many spend
    limits the server's config sets (`settings.configured`), when known (none: say so rather
    than "nothing spent")."""
    if not found:
        if configured == 0:
            return ("no spend budgets are configured: a route's rate_limits entry sets one "
                    "with spend: [{limit: 25.00, per: 1d}]\n")
        return "no spend recorded in any spend budget's current window\n"
    head = ("ROUTE", "LIMIT", "KEY", "PER", "BUDGET", "SPENT", "REMAINING", "RESETS IN")
    lines = [head]
    for r in sorted(found, key=lambda r: (r["route"], r["limit"],
                                          sorted(r["key"].items()), r["per"])):
        key = ",".join(f"{k}={_cell(v)}" for k, v in r["key"].items()) or "-"
        lines.append((r["route"], r["limit"], key, r["per"],
                      f"{r['budget']} {r['currency']}", f"{r['spent']} {r['currency']}",
                      f"{r['remaining']} {r['currency']}", f"{r['reset_s']:g}s"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip()
                   + "\n" for line in lines)


def _cell(value: Any) -> str:
    """A key value as a table cell: a character a terminal acts on (a line break, an escape
    sequence) spelled out, so a claim cannot forge a row (found by review)."""
    text = str(value)
    return text if text.isprintable() else "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
