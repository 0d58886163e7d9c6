"""The spend parts of the config, validated with every error named by its key path.

Top level (optional)::

    prices:
      currency: USD                 # of every price and spend budget (default USD)
      defaults: true                # include the shipped table (extproc/spend/prices.yaml;
                                    # USD: a config in another currency sets this false)
      models:                       # looked up before the shipped table (override, extend)
        - {provider: openai, model: gpt-4o, input: 2.50, cached_input: 1.25, output: 10.00}
        - {provider: anthropic, model: "claude-sonnet-4-5*", input: 3, cached_input: 0.30,
           cache_write: 3.75, output: 15, since: 2025-09-29}

    spend:
      team_claim: team              # the JWT claim whose value labels spend metrics (`team`)

Per route::

    default_price: {input: 1.00, output: 4.00}   # for models no table prices (else the
                                                 # request is reported as unpriced)

Prices are per million tokens; `since` (a date) is when a price takes effect.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from ..config import PROVIDERS
from ..schema import Checker, join
from .prices import Price, PriceEntry, PriceTable

DEFAULTS_FILE = Path(__file__).with_name("prices.yaml")
_PRICE_KEYS = ("input", "output", "cached_input", "cache_write", "reasoning")


@dataclass(frozen=True)
class SpendSettings:
    """Top-level `spend:`."""

    #: the identity claim whose value is the `team` label of the spend metrics (None: `-`)
    team_claim: str | None = None


def parse_spend(c: Checker, raw: Any) -> SpendSettings:
    """The top-level `spend:` section (optional)."""
    d = c.mapping(raw, "spend", ("team_claim",))
    return SpendSettings(team_claim=c.string(d, "team_claim", "spend"))


def parse_prices(c: Checker, raw: Any) -> PriceTable:
    """The top-level `prices:`: the config's entries over the shipped table."""
    d = c.mapping(raw, "prices", ("currency", "defaults", "models"))
    currency = c.string(d, "currency", "prices", "USD") or "USD"
    use_defaults = c.boolean(d, "defaults", "prices", currency == "USD")
    if use_defaults and currency != "USD":
        c.error("prices.defaults", f"the shipped table is in USD, not {currency}: set "
                "defaults: false and list every model under prices.models")
    entries = []
    for i, item in enumerate(c.sequence(d.get("models"), join("prices", "models"))):
        where = join(join("prices", "models"), i)
        e = c.mapping(item, where, ("provider", "model", "since", *_PRICE_KEYS))
        provider = c.choice(e, "provider", where, PROVIDERS, what="provider")
        model = c.string(e, "model", where, required=True)
        # only the price keys: the entry's unknown keys are reported once, above
        price = parse_price(c, {k: e[k] for k in _PRICE_KEYS if k in e}, where, currency)
        since = _date(c, e, where)
        if provider and model and price is not None:
            entries.append(PriceEntry(provider, model, price, since, source="config"))
    fallback = default_table() if use_defaults else None
    return PriceTable(entries, fallback=fallback, currency=currency)


def parse_price(c: Checker, raw: Any, path: str, currency: str) -> Price | None:
    """One price: `input` and `output` required, the others optional (per million tokens)."""
    d = c.mapping(raw, path, _PRICE_KEYS)
    values: dict[str, Decimal | None] = {}
    for key in _PRICE_KEYS:
        value = d.get(key)
        if value is None:
            if key in ("input", "output"):
                c.error(join(path, key), "is required (a price per million tokens)")
            values[key] = None
            continue
        amount = _decimal(value)
        if amount is None or amount < 0:
            c.error(join(path, key), f"expected a price per million tokens (a number >= 0), "
                    f"got {value!r}")
        values[key] = amount
    if values["input"] is None or values["output"] is None or any(
            d.get(k) is not None and values[k] is None for k in _PRICE_KEYS):
        return None
    return Price(input=values["input"], output=values["output"],
                 cached_input=values["cached_input"], cache_write=values["cache_write"],
                 reasoning=values["reasoning"], currency=currency)


@cache
def default_table() -> PriceTable:
    """The shipped table (read once per process)."""
    return read_table(DEFAULTS_FILE)


def read_table(path: Path) -> PriceTable:
    """A table file in the shipped format (written by scripts/prices_from_litellm.py)::

        source: "where the prices come from"
        generated: 2026-12-03
        models:
          - {providers: [openai, azure], model: gpt-4o, input: 2.5, cached_input: 1.25,
             output: 10, since: 2024-08-06, note: "what is not applied"}

    Every problem raises ValueError naming the file and the entry's path."""
    data = yaml.safe_load(path.read_text()) or {}
    c = Checker()
    top = c.mapping(data, "", ("source", "generated", "models"))
    source = top.get("source", "")
    entries = []
    for i, item in enumerate(c.sequence(top.get("models"), "models")):
        where = join("models", i)
        e = c.mapping(item, where, ("providers", "model", "since", "note", "source",
                                    *_PRICE_KEYS))
        providers = c.sequence(e.get("providers"), join(where, "providers"))
        if not providers:
            c.error(join(where, "providers"), "is required (a list of providers)")
        for provider in providers:
            if provider not in PROVIDERS:
                c.error(join(where, "providers"), f"unknown provider {provider!r} (one of: "
                        f"{', '.join(PROVIDERS)})")
        model = c.string(e, "model", where, required=True)
        price = parse_price(c, {k: e[k] for k in _PRICE_KEYS if k in e}, where, "USD")
        since = _date(c, e, where)
        if price is not None and model:
            entries.extend(PriceEntry(p, model, price, since, source=e.get("source", source))
                           for p in providers if p in PROVIDERS)
    if c.errors:   # a defect of the package (or of a regenerated file), caught by its tests
        raise ValueError(f"{path}: {'; '.join(c.errors)}")
    return PriceTable(entries)


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        # through str: 0.3 is read as written, not as the binary float nearest to it
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def _date(c: Checker, d: Any, path: str) -> dt.date | None:
    value = d.get("since")
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        # (YAML reads an unquoted time stamp as one: a date it is not, and comparing it with
        # today's date raised on every request for the model, found by review)
        c.error(join(path, "since"), f"expected a date like 2025-09-29, got a date and time "
                f"({value.isoformat(sep=' ')})")
        return None
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        c.error(join(path, "since"), f"expected a date like 2025-09-29, got {value!r}")
        return None
