"""The arithmetic of spend budgets (sans-IO): amounts of currency as the integer
micro-units GCRA counts, what a request reserves, what it is charged, and how much output a
stream may deliver before a budget runs dry.

A spend window counts micro-units of the config's currency (`Pricing.currency`): a limit of
25.00 is `Window(25_000_000, period, "spend")`, so gcra and the Redis script work on it
unchanged. Costs are floats of micro-units (a request may cost a fraction of one). Amounts
shown to people (the 429, the headers, `extproc spend`) are decimal strings in currency units
with at least two decimals ("25.00", "0.000315").

- reservation: `Price.worst_case(input estimate, max output x choices)`;
- charge: `Price.cost(usage)` of the provider's whole usage; for a stream cut short without
  usage or with a partial report, at least the prompt estimate as input plus the delivered
  output (and the reservation when media was delivered); nothing for an upstream error;
- output allowance (`cut_streams`): per token window, what is left after the admission plus
  the output this request reserved; per spend window, the same in micro-units divided by the
  dearest price of one output token. It is fixed at admission: concurrent requests share what
  is left, and settlement still charges the real use.
"""

from __future__ import annotations

import math
from decimal import ROUND_CEILING, Decimal

from ..providers.base import Usage
from ..spend.prices import Price

MICRO = Decimal(1_000_000)
_CENT = Decimal("0.01")
_FINEST = Decimal("0.000001")


def to_micro(amount: Decimal) -> int:
    """A budget limit in currency units as whole micro-units (25.00 -> 25_000_000)."""
    return int((amount * MICRO).to_integral_value())


def micro(amount: Decimal) -> float:
    """A cost as float micro-units, what a spend window is charged."""
    return float(amount * MICRO)


def money(amount: Decimal | int | float, *, micro_units: bool = False,
          round_up: bool = False) -> str:
    """An amount as a decimal string in currency units, at least two decimals and at most
    six (a micro-unit): "25.00", "0.61", "0.000315". `micro_units`: the amount is given in
    micro-units. `round_up`: never show less than the amount (a worst case)."""
    value = Decimal(str(amount)) if not isinstance(amount, Decimal) else amount
    if micro_units:
        value = value / MICRO
    value = value.quantize(_FINEST, rounding=ROUND_CEILING) if round_up else \
        value.quantize(_FINEST)
    if value == value.quantize(_CENT):
        return str(value.quantize(_CENT))
    return f"{value.normalize():f}"


def charge(price: Price, usage: Usage | None, input_estimate: int, delivered: int,
           status: int, unread: bool = False, reserved: Decimal = Decimal(0),
           partial: bool = False, media: bool = False, hidden: bool = False) -> Decimal:
    """What a finished request costs: nothing unless upstream answered 2xx, the provider's
    usage at the price when the stream reported it whole, else at least the prompt
    estimate plus the delivered output (a stream cut short, or one that reported only
    part of its usage: `partial`), and at least the `reserved` worst case when it delivered
    generated `media` (its tokens cannot be sized) or its model may think unseen (`hidden`)
    and no report came. When the reply's usage could not be read (`unread`), what was
    counted is partial: at least the `reserved` worst case."""
    if not 200 <= status < 300:
        return Decimal(0)
    counted = Usage(input_tokens=input_estimate, output_tokens=delivered)
    reported = usage is not None and not usage.is_empty()
    cost = price.cost(usage if reported and usage is not None else counted)
    if unread:
        return max(cost, price.cost(counted), reserved)
    if reported and not partial:
        return cost
    cost = max(cost, price.cost(counted))
    # (`hidden`: the model may think in tokens no stream shows, and no report counted them:
    # none came, or only a stream's opening one, Anthropic's message_start)
    unseen = hidden and (not reported or usage is None or usage.opening)
    return max(cost, reserved) if media or unseen else cost


def token_allowance(remaining: int, reserved_output: int) -> int:
    """Output tokens a token window lets this request deliver: what it has left after the
    admission plus the output part of this request's own reservation."""
    return max(0, remaining) + reserved_output


def spend_allowance(remaining_micro: int, reserved_output: int, price: Price) -> int | None:
    """Output tokens a spend window lets this request deliver: (what is left after the
    admission + the output part of the reserved cost) / the price of one output token, both
    in micro-units (a price per million tokens is the micro-units one token costs). None:
    output is free at this price, the window cannot cut it."""
    per_token = price.output_max
    if per_token <= 0:
        return None
    return math.floor((Decimal(max(0, remaining_micro)) + reserved_output * per_token)
                      / per_token)
