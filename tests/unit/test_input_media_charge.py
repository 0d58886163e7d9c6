"""Input media counts in the charges made without the provider's usage report (found by
review: 500 images in one request, left after the first token, cost the token budget 5
tokens and the spend budget $0.000002 where the provider billed 4.25 million tokens). Each
item counts `limits.input_media_tokens` of its kind when the client leaves before the
report, when no reply came, or when the report cannot be read; a report read replaces it.
Driven through a real Exchange and the route's settlement, sans-IO, as the servicer runs
them."""

from __future__ import annotations

import base64
import itertools
import json
from decimal import Decimal
from typing import Any

import pytest

from extproc import loader
from extproc import protocol as P
from extproc.exchange import Exchange
from extproc.limits.media import DEFAULTS
from extproc.mock import anthropic as m_anthropic
from extproc.mock import openai as m_openai
from extproc.mock.common import Reply
from tests.unit.test_exchange import (
    request_body,
    request_headers,
    response_body,
    response_headers,
    send,
)

PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(64)).decode()
PDF = base64.b64encode(b"%PDF-1.4\n" + bytes(64)).decode()
REPLY = Reply.make(" ".join(f"w{i}" for i in range(40)), "m", "rid", 1700000000, 7)
_ROUTES = (f"media{i}" for i in itertools.count())
#: $1 per million input tokens, $2 per million output
PRICES = {"currency": "USD", "defaults": False, "models": [
    {"provider": p, "model": m, "input": 1, "output": 2} for p, m in (
        ("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-5"),
        ("gemini", "gemini-2.5-flash"))]}


def chat(images: int, stream: bool = True) -> dict[str, Any]:
    parts = [{"type": "text", "text": "what is in these?"}] + [
        {"type": "image_url", "image_url": {"url": PNG, "detail": "high"}}] * images
    return {"model": "gpt-4o", "max_tokens": 50, "stream": stream,
            "messages": [{"role": "user", "content": parts}]}


async def exchange(provider: str, path: str, req: dict[str, Any],
                   limits: dict[str, Any] | None = None) -> tuple[Exchange, Any]:
    rname = next(_ROUTES)
    cfg = loader.parse({"prices": PRICES, **({"limits": limits} if limits else {}),
                        "routes": [{"name": rname, "provider": provider, "rate_limits": [{
                            "name": "t", "key": [], "tokens": [{"limit": 10 ** 9,
                                                                "per": "1d"}],
                            "spend": [{"limit": 1000, "per": "1d"}]}]}]})
    route = cfg.route(rname)
    ex = Exchange(route, rname)
    await send(ex, request_headers(req_mode=P.BUFFERED, resp_mode=P.STREAMED, path=path))
    replies = await send(ex, request_body(json.dumps(req).encode(), True))
    assert not any(r.HasField("immediate_response") for r in replies), replies
    return ex, route


async def finish(ex: Exchange, route: Any) -> dict[str, Any]:
    ex.close()
    for policy in route.finishers:
        await policy.on_finish(ex)
    return ex.state


async def left_after(ex: Exchange, route: Any, frames: list[bytes]) -> dict[str, Any]:
    """The client leaves after `frames` of a stream: no end, the exchange is closed."""
    await send(ex, response_headers(200, **{"content-type": "text/event-stream"}))
    for frame in frames:
        await send(ex, response_body(frame, False))
    return await finish(ex, route)


def openai_frames(req: dict[str, Any]) -> list[bytes]:
    return m_openai.build_stream({**req, "stream_options": {"include_usage": True}}, REPLY)


@pytest.mark.parametrize("images", [0, 1, 7])
async def test_a_stream_left_before_its_report_pays_for_its_images(images: int) -> None:
    req = chat(images)
    ex, route = await exchange("openai", "/v1/chat/completions", req)
    state = await left_after(ex, route, openai_frames(req)[:3])
    text_only = state["ratelimit_held"].input_estimate
    assert state["tokens_charged"] >= text_only + images * DEFAULTS["image"]
    assert state["tokens_charged"] < text_only + images * DEFAULTS["image"] + 50
    # the same count at the input price: $1 per million tokens
    assert state["spend_charged"] >= Decimal(images * DEFAULTS["image"]) / 10 ** 6


async def test_a_request_that_got_no_reply_pays_for_its_images() -> None:
    ex, route = await exchange("openai", "/v1/chat/completions", chat(4))
    state = await finish(ex, route)    # the client left before any reply
    held = state["ratelimit_held"]
    assert state["tokens_charged"] == held.estimate + 4 * DEFAULTS["image"]
    # spend: the whole reservation and the images beside it, as the tokens (found by the
    # review of the fix: the bound took the output reservation's place)
    assert state["spend_charged"] == held.cost + Decimal(4 * DEFAULTS["image"]) / 10 ** 6


async def test_a_report_read_replaces_the_bound() -> None:
    """The provider's count of what the images cost is what is charged, not the bound."""
    req = chat(3)
    ex, route = await exchange("openai", "/v1/chat/completions", req)
    await send(ex, response_headers(200, **{"content-type": "text/event-stream"}))
    for frame in openai_frames(req):
        await send(ex, response_body(frame, False))
    await send(ex, response_body(b"", True))
    state = await finish(ex, route)
    assert state["tokens_charged"] == REPLY.total_tokens


async def test_the_bound_is_the_routes_to_set() -> None:
    req = chat(2)
    ex, route = await exchange("openai", "/v1/chat/completions", req,
                               {"input_media_tokens": {"image": 48_000}})
    state = await left_after(ex, route, openai_frames(req)[:3])
    assert state["tokens_charged"] >= 96_000


async def test_anthropic_documents_and_gemini_video_count_too() -> None:
    doc = {"model": "claude-sonnet-4-5", "max_tokens": 50, "messages": [{"role": "user",
           "content": [{"type": "document", "source": {
               "type": "base64", "media_type": "application/pdf", "data": PDF}},
               {"type": "text", "text": "summarise"}]}]}
    ex, route = await exchange("anthropic", "/v1/messages", doc)
    state = await finish(ex, route)
    assert state["tokens_charged"] == state["ratelimit_held"].estimate + DEFAULTS["document"]
    video = {"contents": [{"role": "user", "parts": [
        {"inlineData": {"mimeType": "video/mp4", "data": base64.b64encode(bytes(64)).decode()}},
        {"text": "what happens?"}]}], "generationConfig": {"maxOutputTokens": 50}}
    ex, route = await exchange("gemini",
                               "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
                               video)
    state = await finish(ex, route)
    assert state["tokens_charged"] == state["ratelimit_held"].estimate + DEFAULTS["video"]


ERROR = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",' \
    b'"message":"Overloaded"}}\n\n'


async def test_a_report_of_the_input_read_before_an_error_event_replaces_the_bound() -> None:
    """message_start reports the input, images included: a stream an error event ends pays
    that count and what it delivered, not the bound (found by review: eight small images
    were charged 20,000 tokens where the report said 810). (A client that leaves after
    message_start, before the stream's end, settles on the bound: the report is published
    at the stream's end.)"""
    req = {"model": "claude-sonnet-4-5", "max_tokens": 50, "stream": True, "messages": [{
        "role": "user", "content": [{"type": "image", "source": {
            "type": "base64", "media_type": "image/png", "data": PNG.split(",", 1)[1]}}] * 8
        + [{"type": "text", "text": "hi"}]}]}
    ex, route = await exchange("anthropic", "/v1/messages", req)
    frames = m_anthropic.build_stream(req, REPLY)[:4]
    assert b'"input_tokens":7' in frames[0]
    await send(ex, response_headers(200, **{"content-type": "text/event-stream"}))
    for frame in frames:
        await send(ex, response_body(frame, False))
    await send(ex, response_body(ERROR, True))
    state = await finish(ex, route)
    assert state["usage"].input_tokens == 7
    assert 7 <= state["tokens_charged"] < 100, state["tokens_charged"]
    assert state["spend_charged"] < Decimal(100 * 2) / 10 ** 6


async def test_a_reported_input_stands_beside_the_output_reservation() -> None:
    """A model that thinks unseen, ended by an error after message_start: the whole
    reservation is charged, with the input the report counted in place of the prompt
    estimate, beside the output reserved (found by review: the report's input took the
    output reservation's place, 4,097 tokens where 6,096 were due)."""
    req = {"model": "claude-sonnet-4-5", "max_tokens": 4096, "stream": True,
           "thinking": {"type": "enabled", "budget_tokens": 2048}, "messages": [{
               "role": "user", "content": [{"type": "image", "source": {
                   "type": "base64", "media_type": "image/png",
                   "data": PNG.split(",", 1)[1]}}] * 8 + [{"type": "text", "text": "hi"}]}]}
    ex, route = await exchange("anthropic", "/v1/messages", req)
    start = {"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 2000, "output_tokens": 1}}}
    await send(ex, response_headers(200, **{"content-type": "text/event-stream"}))
    await send(ex, response_body(f"event: message_start\ndata: {json.dumps(start)}\n\n"
                                 .encode(), False))
    await send(ex, response_body(ERROR, True))
    state = await finish(ex, route)
    held = state["ratelimit_held"]
    assert state["tokens_charged"] == 2000 + held.output
    assert state["spend_charged"] == held.price.worst_case(2000, held.output)


async def test_guards_and_budgets_walk_a_request_for_its_media_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The guards (which refuse what they cannot read) and the budgets (which count it) ask
    the same question of one parsed request: one walk, let go with the request."""
    from extproc.providers.openai import OpenAIAdapter
    from extproc.providers.unread import UNREAD_MEMO
    walks: list[int] = []
    walk = OpenAIAdapter.unread_inputs
    monkeypatch.setattr(OpenAIAdapter, "unread_inputs",
                        lambda self, body: walks.append(1) or walk(self, body))
    rname = next(_ROUTES)
    cfg = loader.parse({"guards": {"pii": {"detectors": ["email"], "allow_unread": ["image"]}},
                        "routes": [{"name": rname, "provider": "openai", "guards": ["pii"],
                                    "rate_limits": [{"name": "t", "key": [], "tokens": [
                                        {"limit": 10 ** 9, "per": "1d"}]}]}]})
    route = cfg.route(rname)
    ex = Exchange(route, rname)
    await send(ex, request_headers(req_mode=P.BUFFERED, resp_mode=P.STREAMED,
                                   path="/v1/chat/completions"))
    await send(ex, request_body(json.dumps(chat(3)).encode(), True))
    assert walks == [1]
    assert ex.state["ratelimit_held"].media == 3 * DEFAULTS["image"]
    assert UNREAD_MEMO in ex.state
    await send(ex, response_headers(200, **{"content-type": "text/event-stream"}))
    assert UNREAD_MEMO not in ex.state   # (the parsed request goes with the rest of it)


def test_a_bound_of_an_unknown_kind_or_below_zero_does_not_load() -> None:
    with pytest.raises(loader.ConfigError) as exc:
        loader.parse({"limits": {"input_media_tokens": {"picture": 1, "audio": -1}},
                      "routes": [{"name": "r", "provider": "openai"}]})
    errors = "\n".join(exc.value.errors)
    assert "limits.input_media_tokens.picture: unknown key" in errors
    assert "limits.input_media_tokens.audio: must be >= 0" in errors
