"""Token budgets through the real Envoy count every kind of output a stream delivered: a
client that leaves an Anthropic thinking stream, an upstream that resets in the middle of
an OpenAI refusal, a Responses image cut short; a `cut_streams` limit cuts a thinking
stream; and a stream that ends in the provider's mid-stream error event after a partial
usage report (Anthropic's message_start says one output token) is charged what it
delivered, not that report. Budgets are read back from the probes' x-ratelimit headers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from extproc.mock import openai_responses as m_responses
from extproc.mock.common import Reply
from tests.harness import Gateway, Mock, add_route
from tests.integration.test_ratelimit import _remaining_tokens

pytestmark = pytest.mark.envoy

KEY = ["header:x-test-client"]
PROVIDERS = ("openai", "anthropic", "gemini")
WORDS = " ".join(f"w{i}" for i in range(300))
MSG = [{"role": "user", "content": "hi"}]


def config() -> dict[str, Any]:
    # (routes named rl-tokens-<provider>: the probe of test_ratelimit reads the budget left)
    routes: list[dict[str, Any]] = [
        {"name": f"rl-tokens-{p}", "provider": p, "rate_limits": [
            {"name": "tokens", "key": KEY, "tokens": [{"limit": 100_000, "per": "30d"}]}]}
        for p in PROVIDERS]
    routes.append({"name": "out-cut", "provider": "anthropic", "rate_limits": [
        {"name": "tokens-60", "key": KEY, "tokens": [{"limit": 60, "per": "1h"}],
         "cut_streams": True}]})
    return {"limits": {"backend": "memory", "default_max_tokens": 500}, "routes": routes}


def adjust(doc: dict[str, Any]) -> None:
    for p in PROVIDERS:
        add_route(doc, f"/rl-tokens-{p}/", p, f"rl-tokens-{p}")
    add_route(doc, "/out-cut/", "anthropic", "out-cut")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path_factory.mktemp("budget-output"), config(), mock=mock,
                      adjust=adjust)
    yield gateway
    gateway.close()


def who() -> dict[str, str]:
    return {"x-test-client": uuid.uuid4().hex}


def _stream(gw: Gateway, path: str, body: dict[str, Any], headers: dict[str, str],
            leave_at: bytes | None = None, count: int = 0) -> bytes:
    """POST a stream; with `leave_at`, go away once `count` of them were received."""
    received = b""
    with httpx.Client(timeout=30) as client, client.stream(
            "POST", f"{gw.url}{path}", json=body, headers=headers) as r:
        assert r.status_code == 200, r.read()
        try:
            for chunk in r.iter_raw():
                received += chunk
                if leave_at is not None and received.count(leave_at) >= count:
                    break                     # the client goes away
        except httpx.HTTPError:
            pass                              # the upstream reset: Envoy resets the stream
    return received


def test_a_client_that_leaves_a_thinking_stream_pays_for_the_thinking(gw: Gateway) -> None:
    route, client = "rl-tokens-anthropic", who()
    before = _remaining_tokens(gw, route, client)
    got = _stream(gw, f"/{route}/v1/messages",
                  {"model": "claude-sonnet-4-5", "max_tokens": 4000, "stream": True,
                   "thinking": {"type": "enabled", "budget_tokens": 2000}, "messages": MSG},
                  {**client, "x-mock-shape": "thinking", "x-mock-reply": WORDS,
                   "x-mock-delay-ms": "10"}, b'"thinking_delta"', 60)
    delivered = got.count(b'"thinking_delta"')
    charged = before - _remaining_tokens(gw, route, client) - 2
    # once, thinking counted nothing: the prompt's token and the block's start; then what
    # was delivered; since 2026-12-06 the whole reservation (1 + 4000): Claude 4 streams
    # a summary of its thinking, or none of it (`display: omitted`), and Anthropic bills
    # the whole (found by review)
    assert delivered > 0 and charged == 1 + 4000, (delivered, charged)


def test_an_upstream_reset_in_a_refusal_pays_for_the_refusal(gw: Gateway) -> None:
    route, client = "rl-tokens-openai", who()
    before = _remaining_tokens(gw, route, client)
    got = _stream(gw, f"/{route}/v1/chat/completions",
                  {"model": "gpt-4o-mini", "max_tokens": 4000, "stream": True,
                   "messages": MSG},
                  {**client, "x-mock-shape": "refusal", "x-mock-reply": WORDS,
                   "x-mock-fail-after": "20000", "x-mock-delay-ms": "2"})
    delivered = got.count(b'"refusal":"')
    assert 50 < delivered < 300
    charged = before - _remaining_tokens(gw, route, client) - 2
    assert 1 + delivered <= charged < 4001, (delivered, charged)


def test_a_generated_image_cut_short_pays_its_reservation(gw: Gateway) -> None:
    """The upstream breaks after the image went out, before the usage: no byte count can
    size an image, so the whole reservation is charged."""
    route, client = "rl-tokens-openai", who()
    body = {"model": "gpt-4.1", "stream": True, "max_output_tokens": 3000, "input": "draw",
            "tools": [{"type": "image_generation", "partial_images": 1}]}
    frames = m_responses.build_stream(body, Reply.make("a cat", "gpt-4.1", "r", 0, 1))
    fail = sum(len(f) for f in frames) - len(frames[-1]) // 2   # in response.completed
    before = _remaining_tokens(gw, route, client)
    got = _stream(gw, f"/{route}/v1/responses", body,
                  {**client, "x-mock-reply": "a cat", "x-mock-fail-after": str(fail),
                   "x-mock-delay-ms": "20"})
    assert b"partial_image_b64" in got and b"response.completed" not in got[-200:]
    charged = before - _remaining_tokens(gw, route, client) - 2
    assert charged >= 1 + 3000, charged


def test_a_client_that_leaves_before_the_report_pays_for_its_images(gw: Gateway) -> None:
    """Found by review: the images a provider bills as input were in no charge made without
    its usage report, so a client that left after the first tokens paid for none of them."""
    route, client = "rl-tokens-openai", who()
    png = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4" \
          "nGNgYGBgAAAABQABpfZFQAAAAABJRU5ErkJggg=="
    parts = [{"type": "text", "text": "what are these?"}] + \
        [{"type": "image_url", "image_url": {"url": png}}] * 3
    before = _remaining_tokens(gw, route, client)
    got = _stream(gw, f"/{route}/v1/chat/completions",
                  {"model": "gpt-4o", "max_tokens": 400, "stream": True,
                   "messages": [{"role": "user", "content": parts}]},
                  {**client, "x-mock-reply": WORDS, "x-mock-delay-ms": "10"},
                  b'"content":"', 5)
    assert b'"usage":{' not in got
    charged = before - _remaining_tokens(gw, route, client) - 2
    # three images at `limits.input_media_tokens.image` (2,500), the text and what came
    assert 3 * 2500 <= charged < 3 * 2500 + 400, charged


def test_a_cut_streams_limit_cuts_a_thinking_stream(gw: Gateway) -> None:
    got = _stream(gw, "/out-cut/v1/messages",
                  {"model": "claude-sonnet-4-5", "max_tokens": 50, "stream": True,
                   "messages": MSG},
                  {**who(), "x-mock-shape": "thinking", "x-mock-reply": WORDS,
                   "x-mock-delay-ms": "5"})
    assert b'"stop_reason":"max_tokens"' in got        # cut, in Anthropic's format
    assert got.count(b'"thinking_delta"') < 120         # far from the reply's 300 pieces
    assert b'"text_delta"' not in got                   # the answer after it never came


@pytest.mark.parametrize(("provider", "path", "body", "piece"), [
    ("anthropic", "/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 4000,
                                   "stream": True, "messages": MSG}, b'"text_delta"'),
    ("openai", "/v1/chat/completions", {"model": "gpt-4o-mini", "max_tokens": 4000,
                                        "stream": True, "messages": MSG}, b'"content":"w'),
    ("gemini", "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
     {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
      "generationConfig": {"maxOutputTokens": 4000}}, b'"text": "w'),
])
def test_a_stream_ended_by_an_error_event_pays_for_what_it_delivered(
        gw: Gateway, provider: str, path: str, body: dict[str, Any], piece: bytes) -> None:
    route, client = f"rl-tokens-{provider}", who()
    before = _remaining_tokens(gw, route, client)
    rid = uuid.uuid4().hex
    got = _stream(gw, f"/{route}{path}", body,
                  {**client, "x-mock-reply": WORDS, "x-mock-error-after": "200",
                   "x-request-id": rid})
    assert b'"error"' in got[-300:]                     # the stream ended in its error event
    delivered = got.count(piece)
    assert delivered > 150
    assert gw.access_log(rid)["extproc"].get("upstream_error")
    charged = before - _remaining_tokens(gw, route, client) - 2
    # before, an Anthropic stream settled on message_start's usage: 1 output token
    assert 1 + delivered <= charged < 4001, (provider, delivered, charged)
