"""Counters and histograms for code that runs on one event loop, without locks: recording is
a dict lookup and an addition (prometheus_client's own take a lock per value, several
microseconds per request on the hot path). A collector turns them into Prometheus families
at scrape time, so prometheus_client still does the exposition format.

Not thread-safe on purpose: the server records from its event loop only.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry


class CounterChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class HistogramChild:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)     # the last one is +Inf
        self.sum = 0.0

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

    def _new(self) -> Any:
        raise NotImplementedError

    def labels(self, *values: str) -> Any:
        child = self.children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name}: expected labels {self.labelnames}")
            child = self.children[values] = self._new()
        return child


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


class Histogram(_Family):
    kind = "histogram"

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str],
                 buckets: Sequence[float]) -> None:
        super().__init__(name, documentation, labelnames)
        self.bounds = tuple(float(b) for b in buckets)
        if list(self.bounds) != sorted(set(self.bounds)):
            raise ValueError(f"{name}: buckets must increase")

    def _new(self) -> HistogramChild:
        return HistogramChild(self.bounds)

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

    def describe(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        # empty families: the registry learns the names without a scrape's worth of work
        for f in self.families:
            yield (CounterMetricFamily(f.name, f.documentation, labels=f.labelnames)
                   if f.kind == "counter" else
                   HistogramMetricFamily(f.name, f.documentation, labels=f.labelnames))
