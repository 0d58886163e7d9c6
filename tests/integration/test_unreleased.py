"""A request that ended while a policy still held it never reached the provider and costs
no budget (found by review: it was charged its whole reservation). A plugin runs after the
limits have admitted the request; when it outlasts Envoy's message timeout, Envoy answers
the client 504 itself, and when the client leaves while it waits, the stream just ends.
Either way the processor's exchange ends with no reply and the request not released; its
outcome is `interrupted`, not `aborted`.
Through the real Envoy, with the message timeout at 200 ms; the budget left is read from
the `x-ratelimit-remaining-tokens` header of a probe request before and after."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.harness import Gateway, Mock

pytestmark = pytest.mark.envoy

BODY = {"model": "gpt-4o-mini", "max_tokens": 5000,
        "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    config = {"limits": {"backend": "memory"},
              "routes": [{"name": "openai", "provider": "openai",
                          "plugins": [{"class": "tests.plugins:SlowBody"},
                                      {"class": "tests.plugins:SlowReply"}],
                          "rate_limits": [{"name": "tokens", "key": ["header:x-test-client"],
                                           "tokens": [{"limit": 100_000, "per": "30d"}]}]}]}
    gateway = Gateway(tmp_path_factory.mktemp("unreleased"), config, mock=mock,
                      settings={"message_timeout": "0.2s"})
    yield gateway
    gateway.close()


def _remaining(gw: Gateway, who: dict[str, str]) -> int:
    reply = httpx.post(f"{gw.url}/openai/v1/chat/completions", timeout=30,
                       headers={**who, "x-mock-reply": "ok"},
                       json={**BODY, "max_tokens": 1})
    assert reply.status_code == 200, reply.text
    return int(reply.headers["x-ratelimit-remaining-tokens"])


def _settled(gw: Gateway) -> None:
    assert gw.server is not None
    gw.server.wait_idle()


@pytest.mark.parametrize("how", ["message_timeout", "client_left"])
def test_a_request_a_plugin_held_past_its_end_costs_nothing(gw: Gateway, how: str) -> None:
    who = {"x-test-client": uuid.uuid4().hex}
    before = _remaining(gw, who)          # (its own 2 tokens already taken)
    seen = gw.mock.last()
    rid = uuid.uuid4().hex
    if how == "message_timeout":
        reply = httpx.post(f"{gw.url}/openai/v1/chat/completions", json=BODY, timeout=30,
                           headers={**who, "x-test-slow-ms": "600", "x-request-id": rid})
        assert reply.status_code == 504, reply.text
    else:
        with pytest.raises(httpx.TimeoutException):
            httpx.post(f"{gw.url}/openai/v1/chat/completions", json=BODY, timeout=0.08,
                       headers={**who, "x-test-slow-ms": "150", "x-request-id": rid})
    # said apart from a client leaving on its own (found by review: counted "aborted")
    line = gw.server_access_line(rid)
    assert line["outcome"] == "interrupted" and line["interrupted"] == "request_body", line
    assert line["interrupted_after_ms"] >= 50, line
    time.sleep(0.8)                       # the plugin's wait ends; the exchange settles
    _settled(gw)
    assert gw.mock.last() == seen         # nothing reached the provider
    after = _remaining(gw, who)
    # the probe costs what the first did (2: its prompt and max_tokens 1); the held
    # request, reserved at 5,001, costs nothing
    assert before - after == 2, (before, after)


def test_a_request_the_plugin_let_go_is_charged(gw: Gateway) -> None:
    """The counterpart: the same plugin waiting within the timeout lets the request go, and
    its reply's usage is what it costs."""
    who: dict[str, Any] = {"x-test-client": uuid.uuid4().hex}
    before = _remaining(gw, who)
    reply = httpx.post(f"{gw.url}/openai/v1/chat/completions", json=BODY, timeout=30,
                       headers={**who, "x-test-slow-ms": "50", "x-mock-reply": "ok"})
    assert reply.status_code == 200, reply.text
    _settled(gw)
    usage = reply.json()["usage"]["total_tokens"]
    assert before - _remaining(gw, who) == usage + 2


def test_a_reply_chunk_a_transform_held_past_the_timeout_is_interrupted(gw: Gateway) -> None:
    """Found by the review of the outcome: a reply chunk held by a transform that calls out
    (a webhook guard, an async plugin) past Envoy's message timeout read as the client's
    leaving. Envoy resets the reply then (its headers are out)."""
    rid = uuid.uuid4().hex
    with contextlib.suppress(httpx.HTTPError):
        httpx.post(f"{gw.url}/openai/v1/chat/completions", timeout=30,
                   json={**BODY, "max_tokens": 5, "stream": True},
                   headers={"x-test-client": uuid.uuid4().hex, "x-request-id": rid,
                            "x-test-slow-reply-ms": "600"})
    line = gw.server_access_line(rid)
    assert line["outcome"] == "interrupted" and line["interrupted"] == "response_body", line
