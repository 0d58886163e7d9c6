"""bench/split.py reads the handlers' time per message kind from the server's own metrics."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
import split  # noqa: E402

from extproc import metrics  # noqa: E402


def _text() -> str:
    """The server's /metrics after it timed a few messages."""
    timers = metrics.message_timers()
    for kind, seconds in (("request_headers", 0.001), ("request_headers", 0.003),
                          ("response_body", 0.0005)):
        timers[kind](seconds)
    return metrics.render().decode()


def test_the_histogram_is_read_by_message_kind() -> None:
    before = split.message_seconds(_text())
    after = split.message_seconds(_text())
    got = split.handler_split(before, after, requests=2)
    assert set(got) == {"request_headers", "response_body"}
    assert got["request_headers"]["messages"] == pytest.approx(1.0)
    assert got["request_headers"]["us"] == pytest.approx(2000.0)    # 4 ms over 2 requests
    assert got["response_body"]["messages"] == pytest.approx(0.5)
    assert got["response_body"]["us"] == pytest.approx(250.0)


def test_no_requests_or_no_new_messages_give_nothing() -> None:
    reading = {"request_body": (1.0, 10.0)}
    assert split.handler_split(reading, reading, requests=5) == {}
    assert split.handler_split({}, reading, requests=0) == {}


def test_other_series_are_ignored() -> None:
    text = ('extproc_message_duration_seconds_bucket{message="request_body",le="0.001"} 3\n'
            'extproc_message_duration_seconds_sum{message="request_body"} 0.25\n'
            'extproc_message_duration_seconds_count{message="request_body"} 4\n'
            'extproc_requests_total{route="openai"} 9\n')
    assert split.message_seconds(text) == {"request_body": (0.25, 4.0)}


def test_thread_row_prints_each_role_and_the_loops_sleeps() -> None:
    threads = {"loop": (2862.4, 0.5), "cq poller": (553.0, 41.9), "grpc engine": (303.0, 15.5),
               "other": (0.0, 0.0)}
    assert split.thread_row("streamed-paced", "(h)", threads) == \
        "| streamed-paced | (h) | 2862 | 553 | 303 | 0 | 0.5 |"
    assert split.thread_row("x", "(b)", {}) == "| x | (b) | 0 | 0 | 0 | 0 | 0.0 |"
