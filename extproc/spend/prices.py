"""Prices per provider and model, and what a request costs at them. Sans-IO, exact decimals.

A `Price` is per million tokens, in the config's one currency: `input` (uncached prompt
tokens), `cached_input` (prompt tokens read from the provider's cache; default: `input`),
`cache_write` (prompt tokens written to it, Anthropic; default: `input`), `output`, and
`reasoning` (the reasoning subset of the output; default: `output`). `Price.cost(usage)`
splits the normalised usage (`extproc.providers.base`: input and output counts include their
cached, cache-write and reasoning subsets) into those parts and adds them up as Decimals, so
a test can check the arithmetic to the last digit.

A `PriceTable` holds entries `(provider, model pattern, since, price)`. `lookup(provider,
model)` takes the entries of that provider whose pattern names the model: an exact name
before any pattern, then the pattern with the longest literal text (`claude-sonnet-4-5*`
before `claude-*`); of those, the one with the latest `since` date that is not in the future,
so a price change can be written down before it takes effect. A table can sit on top of
another (`fallback`): the config's entries are looked up first, then the shipped defaults.
The config's table also holds its currency (`prices.currency`), which holds even when it lists
no entry.
A model found nowhere has no price: the caller reports it as unpriced (or uses the route's
`default_price`), never as free.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..providers.base import Usage

MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class Price:
    """Prices per million tokens (see the module docstring for the defaults)."""

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    reasoning: Decimal | None = None
    currency: str = "USD"

    def parts(self, usage: Usage) -> dict[str, tuple[int, Decimal]]:
        """The usage split into billed parts: name -> (tokens, price per million)."""
        read = usage.cached_input_tokens or 0
        write = usage.cache_write_input_tokens or 0
        inputs = usage.input_tokens
        if inputs is None:   # a provider that reports a total only: bill the rest as input
            inputs = max(0, (usage.total_tokens or 0) - (usage.output_tokens or 0))
        reasoning = usage.reasoning_tokens or 0
        output = usage.output_tokens or 0
        cached = self.cached_input if self.cached_input is not None else self.input
        written = self.cache_write if self.cache_write is not None else self.input
        thinking = self.reasoning if self.reasoning is not None else self.output
        return {"input": (max(0, inputs - read - write), self.input),
                "cached_input": (read, cached),
                "cache_write": (write, written),
                "output": (max(0, output - reasoning), self.output),
                "reasoning": (reasoning, thinking)}

    def cost(self, usage: Usage) -> Decimal:
        """What the usage costs, exactly."""
        return sum((n * per for n, per in self.parts(usage).values()), Decimal(0)) / MILLION

    def worst_case(self, input_tokens: int, output_tokens: int) -> Decimal:
        """The most `input_tokens` of prompt (none cached) and up to `output_tokens` of
        output can cost: output at the dearer of the output and reasoning prices."""
        return (input_tokens * max(self.input, self.cached_input or 0, self.cache_write or 0)
                + output_tokens * self.output_max) / MILLION

    @property
    def output_max(self) -> Decimal:
        """The dearest price one output token can have (per million)."""
        return max(self.output, self.reasoning if self.reasoning is not None else self.output)


@dataclass(frozen=True)
class PriceEntry:
    provider: str
    model: str             # an exact name, or a pattern with `*` / `?` / `[...]`
    price: Price
    since: dt.date | None = None
    source: str = ""       # where the number comes from (a URL, "config")

    @property
    def is_pattern(self) -> bool:
        return any(ch in self.model for ch in "*?[")

    def specificity(self) -> tuple[int, int]:
        """Exact names first, then patterns by how much literal text they hold."""
        if not self.is_pattern:
            return (1, len(self.model))
        return (0, sum(ch not in "*?[]" for ch in self.model))


class PriceTable:
    """Entries looked up by provider and model; see the module docstring for the order."""

    def __init__(self, entries: Iterable[PriceEntry], fallback: PriceTable | None = None,
                 today: Callable[[], dt.date] | None = None,
                 currency: str | None = None) -> None:
        self.entries = tuple(entries)
        self.fallback = fallback
        #: the currency it was configured in (None: that of its entries, see `currency`)
        self.configured_currency = currency
        self.today = today or (lambda: dt.datetime.now(dt.UTC).date())
        self._by_provider: dict[str, list[PriceEntry]] = {}
        for entry in sorted(self.entries, key=PriceEntry.specificity, reverse=True):
            self._by_provider.setdefault(entry.provider, []).append(entry)
        self._cache: dict[tuple[str, str, dt.date], PriceEntry | None] = {}

    @property
    def currency(self) -> str:
        """The currency its prices are in: the configured one, else that of its first entry
        (or its fallback's), else USD."""
        return _currency(self)

    def __len__(self) -> int:
        return len(self.entries) + (len(self.fallback) if self.fallback is not None else 0)

    def lookup(self, provider: str, model: str | None) -> Price | None:
        entry = self.find(provider, model)
        return entry.price if entry is not None else None

    def find(self, provider: str, model: str | None) -> PriceEntry | None:
        """The entry that prices `model` on `provider` today, or None."""
        if not model:
            return None
        today = self.today()
        key = (provider, model, today)
        if key not in self._cache:
            if len(self._cache) > 4096:
                self._cache.clear()
            found = self._own(provider, model, today)
            if found is None and self.fallback is not None:
                found = self.fallback.find(provider, model)
            self._cache[key] = found
        return self._cache[key]

    def _own(self, provider: str, model: str, today: dt.date) -> PriceEntry | None:
        best: PriceEntry | None = None
        for entry in self._by_provider.get(provider, ()):
            if best is not None and entry.specificity() < best.specificity():
                break    # sorted by specificity: nothing further can beat `best`
            if not (entry.model == model if not entry.is_pattern
                    else fnmatchcase(model, entry.model)):
                continue
            if entry.since is not None and entry.since > today:
                continue
            if best is None or (entry.since or dt.date.min) > (best.since or dt.date.min):
                best = entry
        return best


@dataclass(frozen=True)
class Pricing:
    """What one route prices with: the table, then the route's `default_price` (if any)."""

    table: PriceTable
    default: Price | None = None

    @property
    def currency(self) -> str:
        return self.default.currency if self.default is not None else self.table.currency

    def price(self, provider: str, model: str | None) -> Price | None:
        """The model's price on that provider, the route's default, or None (unpriced)."""
        found = self.table.lookup(provider, model)
        return found if found is not None else self.default


def _currency(table: PriceTable) -> str:
    if table.configured_currency is not None:
        return table.configured_currency
    for entry in table.entries:
        return entry.price.currency
    return _currency(table.fallback) if table.fallback is not None else "USD"
