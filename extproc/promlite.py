"""Counters and histograms for code that runs on one event loop, without locks: recording is
a dict lookup and an addition (prometheus_client's own take a lock per value, several
microseconds per request on the hot path).

They are exported two ways. As a prometheus_client collector (`Families.collect`), for
whoever reads a registry. And as text (`Families.exposition`), which is what `/metrics`
serves: byte for byte what prometheus_client's `generate_latest` writes for the same
families, but with each series' label string escaped once, when the series is made, instead
of at every scrape (prometheus_client validates and escapes every label of every sample: about
10 us a line, a third of a second per scrape at 36,000 lines). It yields the text a few
series at a time, so that a caller on the event loop can let other work run in between.

Not thread-safe on purpose: the server records from its event loop only.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString


class CounterChild:
    __slots__ = ("labels", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.labels = ""     # the series' label string, "{k=\"v\",...}" (set by its family)

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class HistogramChild:
    __slots__ = ("bounds", "counts", "labels", "le_labels", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)     # the last one is +Inf
        self.sum = 0.0
        self.labels = ""     # as CounterChild's
        self.le_labels = ("", "")   # a bucket's label string around its `le="..."`

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1   # le: bound >= value
        self.sum += value


class _Family:
    kind = ""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.children: dict[tuple[str, ...], Any] = {}
        #: the label names in the order the exposition writes them (sorted, as
        #: prometheus_client does), as indexes into a series' values
        self._order = sorted(range(len(self.labelnames)), key=self.labelnames.__getitem__)

    def _new(self) -> Any:
        raise NotImplementedError

    def labels(self, *values: str) -> Any:
        child = self.children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name}: expected labels {self.labelnames}")
            child = self._new()
            self._made(child, values)   # first: a value it cannot write leaves no series
            self.children[values] = child
        return child

    def _made(self, child: Any, values: tuple[str, ...]) -> list[str]:
        """Give a new series its label string; its `name="value"` pairs, in order."""
        pairs = [f'{self.labelnames[i]}="{_escape(values[i])}"' for i in self._order]
        child.labels = "{" + ",".join(pairs) + "}" if pairs else ""
        return pairs

    def _head(self, kind: str, name: str) -> str:
        doc = self.documentation.replace("\\", r"\\").replace("\n", r"\n")
        return f"# HELP {name} {doc}\n# TYPE {name} {kind}\n"

    def exposition(self) -> Iterator[str]:
        """The family's text, its header first, then one piece per series."""
        raise NotImplementedError


class Counter(_Family):
    """Exported as `NAME_total`."""

    kind = "counter"

    def _new(self) -> CounterChild:
        return CounterChild()

    def family(self) -> CounterMetricFamily:
        f = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in self.children.items():
            f.add_metric(list(values), child.value)
        return f

    def exposition(self) -> Iterator[str]:
        name = self.name + "_total"
        yield self._head("counter", name)
        for child in list(self.children.values()):
            yield f"{name}{child.labels} {floatToGoString(child.value)}\n"


class Histogram(_Family):
    kind = "histogram"

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str],
                 buckets: Sequence[float]) -> None:
        super().__init__(name, documentation, labelnames)
        self.bounds = tuple(float(b) for b in buckets)
        if list(self.bounds) != sorted(set(self.bounds)):
            raise ValueError(f"{name}: buckets must increase")
        if any(not 0 <= b < math.inf for b in self.bounds):
            # prometheus_client writes such histograms otherwise (no count and sum after a
            # negative bound, its own +Inf): the exposition would no longer be its text
            raise ValueError(f"{name}: buckets must be finite and not negative")
        #: where a bucket's `le` goes among the sorted label names
        self._le_at = sum(1 for label in self.labelnames if label < "le")

    def _new(self) -> HistogramChild:
        return HistogramChild(self.bounds)

    def _made(self, child: Any, values: tuple[str, ...]) -> list[str]:
        pairs = super()._made(child, values)
        at = self._le_at
        child.le_labels = ("{" + "".join(p + "," for p in pairs[:at]) + 'le="',
                           '"' + "".join("," + p for p in pairs[at:]) + "}")
        return pairs

    def exposition(self) -> Iterator[str]:
        name = self.name
        yield self._head("histogram", name)
        les = [_fmt(b) for b in self.bounds] + ["+Inf"]
        bucket, count, total = name + "_bucket", name + "_count", name + "_sum"
        for child in list(self.children.values()):
            head, tail = child.le_labels
            running, lines = 0, []
            for le, n in zip(les, child.counts, strict=True):
                running += n
                lines.append(f"{bucket}{head}{le}{tail} {_count(running)}\n")
            lines.append(f"{count}{child.labels} {_count(running)}\n")
            lines.append(f"{total}{child.labels} {floatToGoString(child.sum)}\n")
            yield "".join(lines)

    def family(self) -> HistogramMetricFamily:
        f = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in self.children.items():
            running, buckets = 0, []
            for bound, count in zip((*self.bounds, float("inf")), child.counts, strict=True):
                running += count
                buckets.append(("+Inf" if bound == float("inf") else _fmt(bound), running))
            f.add_metric(list(values), buckets, child.sum)
        return f


def _fmt(bound: float) -> str:
    return repr(bound)


def _count(n: int) -> str:
    """floatToGoString(n) for a count: below a million, the float's repr is "n.0"."""
    return f"{n}.0" if 0 <= n < 1_000_000 else floatToGoString(n)


def _escape(value: str) -> str:
    """A label value as the text format writes it (backslash, newline and quote escaped)."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


class Families(Collector):
    """The collector for every family made through it (register it once)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.families: list[Counter | Histogram] = []
        registry.register(self)

    def counter(self, name: str, documentation: str, labelnames: Sequence[str]) -> Counter:
        c = Counter(name, documentation, labelnames)
        self.families.append(c)
        return c

    def histogram(self, name: str, documentation: str, labelnames: Sequence[str],
                  buckets: Sequence[float]) -> Histogram:
        h = Histogram(name, documentation, labelnames, buckets)
        self.families.append(h)
        return h

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        for f in self.families:
            yield f.family()

    def exposition(self) -> Iterator[str]:
        """Every family's text (see the module docstring), a piece at a time."""
        for f in self.families:
            yield from f.exposition()

    def describe(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        # empty families: the registry learns the names without a scrape's worth of work
        for f in self.families:
            yield (CounterMetricFamily(f.name, f.documentation, labels=f.labelnames)
                   if f.kind == "counter" else
                   HistogramMetricFamily(f.name, f.documentation, labels=f.labelnames))
