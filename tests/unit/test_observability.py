"""The hot-path pieces of operations: lock-free histograms export exactly what
prometheus_client's own would, their text exposition is byte for byte what its
`generate_latest` writes, and the access log's fast JSON line is valid JSON with the same
fields the formatter would write, for any values."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.utils import floatToGoString

from extproc import accesslog, metrics, promlite
from extproc.providers.base import Usage

BUCKETS = (0.1, 0.5, 1.0, 2.5)


@given(st.lists(st.sampled_from([0.0, 0.05, 0.1, 0.3, 0.5, 1.0, 2.0, 2.5, 3.0, 99.0])
                | st.floats(0, 10, allow_nan=False), max_size=40))
def test_histograms_export_like_prometheus_client(values: list[float]) -> None:
    ours_reg, theirs_reg = CollectorRegistry(), CollectorRegistry()
    ours = promlite.Families(ours_reg).histogram("h_seconds", "doc", ["k"], BUCKETS)
    theirs = Histogram("h_seconds", "doc", ["k"], buckets=BUCKETS, registry=theirs_reg)
    for v in values:
        ours.labels("x").observe(v)
        theirs.labels("x").observe(v)

    def samples(reg: CollectorRegistry) -> dict[tuple[str, str], float]:
        return {(s.name, s.labels.get("le", "")): s.value for f in reg.collect()
                for s in f.samples if not s.name.endswith("_created")}

    got, want = samples(ours_reg), samples(theirs_reg)
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert abs(got[key] - value) < 1e-9, key
    assert bool(values) == (b"h_seconds_bucket" in generate_latest(ours_reg))


def test_counters_count_per_label_set() -> None:
    reg = CollectorRegistry()
    c = promlite.Families(reg).counter("reqs", "doc", ["route"])
    c.labels("a").inc()
    c.labels("a").inc(2)
    c.labels("b").inc()
    text = generate_latest(reg).decode()
    assert 'reqs_total{route="a"} 3.0' in text and 'reqs_total{route="b"} 1.0' in text


@given(series=st.lists(st.tuples(st.text(max_size=6), st.text(max_size=6),
                                  st.sampled_from([0.0, 1.0, 2.5, 1e6, 12345678.0, 1e22])
                                  | st.floats(0, 1e9, allow_nan=False),
                                  st.lists(st.floats(0, 10, allow_nan=False), max_size=5)),
                        max_size=8),
       doc=st.text(max_size=12))
def test_the_text_exposition_is_what_prometheus_client_writes(
        series: list[tuple[str, str, float, list[float]]], doc: str) -> None:
    """Label values with quotes, backslashes, line breaks or any other text, label names on
    either side of the histogram's `le`, counts and sums of any size."""
    reg = CollectorRegistry()
    fams = promlite.Families(reg)
    plain = fams.counter("c", doc, ["route", "a_model"])
    timed = fams.histogram("h_seconds", "doc", ["zone", "kind", "a"], BUCKETS)
    bare = fams.histogram("b", "doc", [], BUCKETS)
    fams.counter("empty", "never used", ["x"])
    for one, two, amount, observed in series:
        plain.labels(one, two).inc(amount)
        for value in observed:
            timed.labels(two, one, "x").observe(value)
            bare.labels().observe(value)
    assert "".join(fams.exposition()).encode() == generate_latest(reg)


@given(st.integers(0, 10**13))
def test_counts_are_written_as_prometheus_client_writes_them(n: int) -> None:
    assert promlite._count(n) == floatToGoString(n)


async def test_the_served_exposition_is_the_registry_s() -> None:
    metrics.REQUESTS.labels("r", "openai", 'a "quoted"\nmodel', "ok").inc()
    metrics.RELOADS.labels("ok").inc()
    want = generate_latest(metrics.REGISTRY)
    assert metrics.render() == want
    assert await metrics.render_async() == want


def test_a_fresh_server_serves_both_reload_results_at_zero_and_names_every_outcome() -> None:
    """An alert on `increase(extproc_config_reloads_total{result="refused"}[10m]) > 0` sees
    the first refusal only if the series was there before it (found by review: it appeared
    at 1); the requests counter's help names every outcome `outcome()` gives."""
    import subprocess
    import sys
    text = subprocess.run(
        [sys.executable, "-c", "from extproc import metrics; "
         "import sys; sys.stdout.write(metrics.render().decode())"],
        capture_output=True, text=True, check=True).stdout
    for result in ("ok", "refused"):
        assert f'extproc_config_reloads_total{{result="{result}"}} 0.0' in text
    help_line = next(line for line in text.splitlines()
                     if line.startswith("# HELP extproc_requests_total"))
    for outcome in ("ok", "upstream_error", "auth_denied", "rate_limited", "guard_rejected",
                    "guard_unavailable", "gateway_rejected", "error", "interrupted",
                    "aborted"):
        assert f" {outcome}," in help_line or f" {outcome})" in help_line, outcome


class FakeExchange:
    def __init__(self, **state: Any) -> None:
        self.route_name, self.provider, self.request_id = "r", "openai", "rid-1"
        self.rejection, self.status, self.failed = None, 200, False
        self.started_at = time.monotonic()
        self.ended_at = self.started_at + 0.01
        self.first_token_at = self.first_delivered_at = None
        self.request_headers = {":method": "POST"}
        self.request_body_bytes, self.response_body_bytes = 10, 20
        self.state = state


def test_a_workers_access_line_names_its_process_as_its_other_lines_do() -> None:
    """Under `--workers` every JSON line carries `process` (the worker); the access line,
    written past the formatter, lacked it (found by review)."""
    import logging

    from extproc import logs
    ex = FakeExchange()
    try:
        logs.setup_logging(prefix="worker1")
        doc = json.loads(accesslog.line(ex, "ok"))  # type: ignore[arg-type]
        record = logging.LogRecord("extproc.access", logging.INFO, __file__, 1, "request",
                                   None, None)
        other = json.loads(logging.getLogger().handlers[0].format(record))
    finally:
        logs.setup_logging()
    assert doc["process"] == other["process"] == "worker1"
    assert "process" not in json.loads(accesslog.line(ex, "ok"))  # type: ignore[arg-type]


@given(model=st.text(), subject=st.text(), guard=st.text())
def test_the_fast_access_line_is_the_json_of_its_fields(model: str, subject: str,
                                                        guard: str) -> None:
    identity = type("Identity", (), {"subject": subject})()
    ex = FakeExchange(model=model, identity=identity, guard_request=guard, stream=True,
                      usage=Usage(3, 4, 7), ratelimit={"decision": "allowed", "limit": guard,
                                                       "remaining_tokens": 9})
    doc = json.loads(accesslog.line(ex, "ok", now=1764178802.113))  # type: ignore[arg-type]
    assert doc.pop("ts") == "2025-11-26T17:40:02.113Z"
    assert doc == {"level": "info", "logger": "extproc.access", "msg": "request",
                   **accesslog.fields(ex, "ok")}  # type: ignore[arg-type]


def test_a_series_it_cannot_write_is_not_made() -> None:
    """A label value that is not text raises, and leaves no series without its labels in
    the exposition (it used to be stored before its label string was made)."""
    reg = CollectorRegistry()
    counter = promlite.Families(reg).counter("c", "doc", ["route"])
    with pytest.raises(AttributeError):
        counter.labels(5)   # type: ignore[arg-type]
    counter.labels("r").inc()
    assert "".join(counter.exposition()).splitlines()[2:] == ['c_total{route="r"} 1.0']


@pytest.mark.parametrize("buckets", [(-1.0, 1.0), (0.5, float("inf")), (float("nan"),)])
def test_buckets_the_exposition_cannot_write_as_prometheus_client_are_refused(
        buckets: tuple[float, ...]) -> None:
    with pytest.raises(ValueError):
        promlite.Families(CollectorRegistry()).histogram("h", "doc", [], buckets)
