"""The cost of one request from its settled usage, and how it is reported. Sans-IO.

`request_cost` prices a usage at the route's `Pricing` (the model's entry, else the route's
`default_price`): the exact Decimal, or None when nothing prices the model (reported as
`cost_status: "unpriced"`, never as 0). `as_number` is the cost as the JSON number written
to the dynamic metadata and the access log: the Decimal rounded to `PLACES` decimal places.
`team_of` is the value of the configured team claim of the request's identity (`spend:
team_claim`), for the spend metrics' `team` label.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..providers.base import Usage
    from .prices import Pricing

PLACES = 10
_QUANTUM = Decimal(1).scaleb(-PLACES)
UNPRICED = "unpriced"


@dataclass(frozen=True)
class Cost:
    amount: Decimal | None    # None: no price for the model (unpriced)
    currency: str

    def fields(self) -> dict[str, Any]:
        """`cost` and `currency`, or `cost_status: unpriced` (metadata and the access log)."""
        if self.amount is None:
            return {"cost_status": UNPRICED}
        return {"cost": as_number(self.amount), "currency": self.currency}


def request_cost(pricing: Pricing, provider: str, model: str | None, usage: Usage) -> Cost:
    price = pricing.price(provider, model)
    if price is None:
        return Cost(None, pricing.currency)
    return Cost(price.cost(usage), price.currency)


def as_number(amount: Decimal) -> float:
    """The cost rounded to PLACES decimal places, as a JSON number (its shortest float
    repr, `3.75e-05`, reads back as exactly that decimal)."""
    try:
        return float(amount.quantize(_QUANTUM, rounding=ROUND_HALF_EVEN))
    except InvalidOperation:   # beyond the context's precision: too large to round
        return float(amount)


def team_of(identity: Any, claim: str | None) -> str | None:
    """The identity's value of the team claim (a string, number or boolean), or None."""
    if claim is None or identity is None:
        return None
    claims = getattr(identity, "claims", None)
    value = claims.get(claim) if isinstance(claims, Mapping) else None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value) if value != "" else None
    return None


def priced_as(state: Mapping[str, Any], provider: str, model: str | None
              ) -> tuple[str, str | None]:
    """The provider and model a request is priced at: the route's, or on the unified front
    the backend's that serves the front model (`extproc.front` leaves them in the state)."""
    backend = state.get("backend_provider")
    return (backend, state.get("backend_model")) if backend is not None else (provider, model)


@dataclass(frozen=True)
class CostReport:
    """How one request's usage is priced and reported: kept in the exchange state (it holds
    no reference to the exchange) so that a stream cut can report its corrected usage."""

    pricing: Pricing
    provider: str
    model: str | None
    team_claim: str | None

    def publish(self, state: dict[str, Any], metadata: dict[str, Any], usage: Usage) -> None:
        """Price `usage` into the state (`cost` as a Decimal and `currency`, or
        `cost_status`; `spend_team`) and the metadata (`Cost.fields`), replacing any earlier
        report."""
        if usage.is_empty():
            return
        cost = request_cost(self.pricing, self.provider, self.model, usage)
        for key in ("cost", "currency", "cost_status"):
            state.pop(key, None)
            metadata.pop(key, None)
        metadata.update(cost.fields())
        if cost.amount is None:
            state["cost_status"] = UNPRICED
        else:
            state["cost"], state["currency"] = cost.amount, cost.currency
        state["spend_team"] = team_of(state.get("identity"), self.team_claim)
