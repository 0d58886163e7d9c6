"""A client that leaves a stream part way pays for every piece of output it got, whatever
carried it (thinking, reasoning_content on the unified front, refusals, Responses function
call arguments, Gemini function calls, a generated image), and a `cut_streams` limit cuts
such a stream at its allowance. Driven through a real Exchange and the route's settlement,
sans-IO, as the servicer runs them."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from extproc import loader
from extproc import protocol as P
from extproc.exchange import Exchange
from extproc.mock import anthropic as m_anthropic
from extproc.mock import google as m_google
from extproc.mock import openai as m_openai
from extproc.mock.common import Reply
from tests.unit.test_exchange import (
    request_body,
    request_headers,
    response_body,
    response_headers,
    send,
)

N = 800
REPLY = Reply.make(" ".join(f"w{i}" for i in range(N)), "m", "rid", 1700000000, 7)
MSG = [{"role": "user", "content": "hi"}]
ASK = 20000
#: a route name of its own for each exchange: in-memory budgets are kept per process
_ROUTES = (f"r{i}" for i in itertools.count())


def _event(doc: dict[str, Any]) -> bytes:
    return f"event: {doc['type']}\ndata: {json.dumps(doc, separators=(',', ':'))}\n\n".encode()


def _responses(kind: str, field: str) -> list[bytes]:
    return [_event({"type": "response.created", "sequence_number": 0, "response": {
        "id": "r", "object": "response", "status": "in_progress", "output": [],
        "usage": None}})] + [
        _event({"type": kind, "sequence_number": i + 1, "output_index": 0, "item_id": "x",
                field: f"w{i} "}) for i in range(N)]


def _case(name: str, ask: int) -> tuple[dict[str, Any], str, dict[str, Any], list[bytes]]:
    """(route, path, request asking for `ask` output tokens, the stream's frames) of each
    way to carry output."""
    messages = {"model": "claude-sonnet-4-5", "max_tokens": ask, "stream": True,
                "messages": MSG}
    if name == "anthropic_thinking":
        frames = m_anthropic.build_stream(messages, REPLY, "thinking")
        frames = frames[:next(i for i, f in enumerate(frames) if b'"index":1' in f)]
        return {"provider": "anthropic"}, "/v1/messages", messages, frames
    if name == "unified_reasoning":
        route = {"provider": "openai-compatible", "auth": "none",
                 "backends": {"anthropic": {"upstream_credential": {"env": "FAKE_KEY"}}},
                 "models": [{"model": "claude-*", "backend": "anthropic"}]}
        frames = m_anthropic.build_stream(messages, REPLY, "thinking")
        frames = frames[:next(i for i, f in enumerate(frames) if b'"index":1' in f)]
        req = {"model": "claude-sonnet-4-5", "stream": True, "max_completion_tokens": ask,
               "reasoning_effort": "high", "messages": MSG}
        return route, "/v1/chat/completions", req, frames
    if name == "chat_refusal":
        req = {"model": "gpt-4o", "stream": True, "max_tokens": ask, "messages": MSG}
        return {"provider": "openai"}, "/v1/chat/completions", req, \
            m_openai.build_stream({**req, "stream_options": {"include_usage": True}},
                                  REPLY, "refusal")[:N]
    if name in ("responses_arguments", "responses_reasoning"):
        kind = "function_call_arguments" if name == "responses_arguments" \
            else "reasoning_summary_text"
        req = {"model": "gpt-4o", "stream": True, "max_output_tokens": ask, "input": "hi"}
        return {"provider": "openai"}, "/v1/responses", req, \
            _responses(f"response.{kind}.delta", "delta")
    if name in ("gemini_function_call", "gemini_thinking_call"):
        # (no thinking: a thinking model's hidden thoughts make a stream it leaves pay
        # its reservation, `test_a_model_that_thinks_unseen_pays_its_reservation`)
        off = {"thinkingConfig": {"thinkingBudget": 0}} if name == "gemini_function_call" \
            else {}
        req = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
               "generationConfig": {"maxOutputTokens": ask, **off}}
        frame = m_google.build_stream(req, REPLY, sse=True, shape="tool")[0]
        doc = json.loads(frame[len(b"data: "):])
        doc["candidates"][0].pop("finishReason")      # the stream goes on: not finished
        doc.pop("usageMetadata")
        frame = b"data: " + json.dumps(doc).encode() + b"\r\n\r\n"
        return {"provider": "gemini"}, \
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", req, [frame]
    raise AssertionError(name)


async def _left(name: str, cut: bool, monkeypatch: pytest.MonkeyPatch,
                limit: int = 10 ** 6, ask: int = ASK) -> tuple[dict[str, Any], bytes]:
    """The client leaves after the frames: no end of stream, the exchange is closed."""
    monkeypatch.setenv("FAKE_KEY", "k")
    route, path, req, frames = _case(name, ask)
    rname = next(_ROUTES)
    cfg = loader.parse({"routes": [{"name": rname, **route, "rate_limits": [{
        "name": "t", "key": [], "tokens": [{"limit": limit, "per": "1d"}],
        "cut_streams": cut}]}]})
    r = cfg.route(rname)
    ex = Exchange(r, rname)
    await send(ex, request_headers(req_mode=P.BUFFERED, resp_mode=P.STREAMED, path=path))
    await send(ex, request_body(json.dumps(req).encode(), True))
    await send(ex, response_headers(200, **{"content-type": "text/event-stream"}))
    out = []
    for f in frames:
        for reply in await send(ex, response_body(f, False)):
            body = reply.response_body.response.body_mutation
            out.append(body.streamed_response.body if body.HasField("streamed_response")
                       else body.body if body.HasField("body") else f)
    ex.close()
    for p in r.finishers:
        await p.on_finish(ex)
    return ex.state, b"".join(out)


NAMES = ["anthropic_thinking", "unified_reasoning", "chat_refusal", "responses_arguments",
         "responses_reasoning", "gemini_function_call"]


@pytest.mark.parametrize("cut", [False, True])
@pytest.mark.parametrize("name", NAMES)
async def test_a_client_that_leaves_pays_for_the_output_it_got(
        name: str, cut: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    state, _ = await _left(name, cut, monkeypatch)
    reserved = state["ratelimit"]["reserved_tokens"]
    # about a token a piece: nearly all of N pieces were delivered (the first frames and
    # the last piece aside); before, each of these was charged one or two tokens
    assert state["tokens_charged"] >= N * 9 // 10, (name, state["tokens_charged"])
    if name == "unified_reasoning":
        # a `reasoning_effort` turns Anthropic's thinking on: what streams of it may be a
        # summary of what is billed, so a stream left before its report pays its
        # reservation (found by review; this test said "less" until 2026-12-06)
        assert state["tokens_charged"] == reserved
    else:
        assert state["tokens_charged"] < reserved


@pytest.mark.parametrize("name", [n for n in NAMES if n != "gemini_function_call"])
async def test_a_cut_streams_limit_cuts_every_kind_of_output(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A budget of 300 tokens: the stream is cut near it (the allowance is what is left
    after the prompt; before, these streams ran on to their end, uncounted)."""
    state, _ = await _left(name, True, monkeypatch, limit=300, ask=250)
    assert state.get("cut") == "budget", name
    allowance = state["output_allowance"]
    assert allowance <= state["tokens_charged"] <= allowance + 40


async def test_a_generated_image_left_part_way_pays_at_least_its_reservation(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """No count of bytes can size an image's tokens: a stream cut short after one was
    delivered is charged its whole reservation (here less than its base64 at one token per
    64 bytes)."""
    monkeypatch.setenv("FAKE_KEY", "k")
    b64 = "iVBORw0KGgo" * 2000
    frames = [_event({"type": "response.created", "sequence_number": 0,
                      "response": {"id": "r", "status": "in_progress", "output": []}}),
              _event({"type": "response.image_generation_call.partial_image",
                      "sequence_number": 1, "output_index": 0, "item_id": "ig",
                      "partial_image_index": 0, "partial_image_b64": b64})]
    for max_out, floor in ((8000, 8000), (100, 22000 // 64)):
        rname = next(_ROUTES)
        cfg = loader.parse({"routes": [{"name": rname, "provider": "openai", "rate_limits": [
            {"name": "t", "key": [], "tokens": [{"limit": 10 ** 6, "per": "1d"}]}]}]})
        r = cfg.route(rname)
        ex = Exchange(r, rname)
        req = {"model": "gpt-4.1", "stream": True, "max_output_tokens": max_out,
               "input": "draw", "tools": [{"type": "image_generation"}]}
        await send(ex, request_headers(req_mode=P.BUFFERED, resp_mode=P.STREAMED,
                                       path="/v1/responses"))
        await send(ex, request_body(json.dumps(req).encode(), True))
        await send(ex, response_headers(200, **{"content-type": "text/event-stream"}))
        for f in frames:
            await send(ex, response_body(f, False))
        ex.close()
        for p in r.finishers:
            await p.on_finish(ex)
        assert ex.state["tokens_charged"] >= floor


@pytest.mark.parametrize(("provider", "model", "extra", "hidden"), [
    ("openai", "o3-mini", {}, True),
    ("openai", "gpt-5.1", {}, True),
    ("openai", "gpt-4o", {"reasoning_effort": "high"}, True),
    ("openai", "gpt-4o", {}, False),
    ("gemini", "gemini-2.5-flash", {}, True),
    # (found by review) shown thoughts are a summary of those billed: still unseen
    ("gemini", "gemini-2.5-flash", {"generationConfig": {"thinkingConfig": {
        "includeThoughts": True}}}, True),
    ("gemini", "gemini-2.5-flash", {"generationConfig": {"thinkingConfig": {
        "includeThoughts": True, "thinkingBudget": 0}}}, False),
    ("gemini", "gemini-2.5-flash", {"generation_config": {"thinking_config": {
        "thinking_budget": "0"}}, "generationConfig": {"thinkingConfig": {
            "thinkingBudget": 1024}}}, True),
    ("gemini", "gemini-2.0-flash", {}, False),
    ("gemini", "gemma-3-27b-it", {}, False),
    ("openai", "gpt-5-chat-latest", {}, False),
    # default deny (found by the spend audit): a family or fine-tune the gateway does not
    # know may think unseen; only known plain models are charged what they delivered
    ("openai", "gpt-6-sol", {}, True),
    ("openai", "gpt-6.1-astra-2026-10-01", {}, True),
    ("openai", "ft:o4-mini-2025-04-16:acme::abc", {}, True),
    ("openai", "codex-mini-latest", {}, True),
    ("openai", "meta-llama/Llama-3.1-8B-Instruct", {}, True),
    ("openai", "ft:gpt-4o-mini-2024-07-18:acme::abc", {}, False),
    ("openai", "openai/gpt-4.1-mini", {}, False),
    ("openai", "gpt-4", {}, False),
    ("openai", "gpt-4-turbo", {}, False),
    ("openai", "gpt-3.5-turbo-instruct", {}, False),
    ("openai", "gpt-35-turbo", {}, False),           # Azure's name for it
    ("openai", "gpt-40", {}, True),
    # (found by review) Claude 4 streams a summary of its thinking, or with `display:
    # omitted` none of it, and Anthropic bills the whole thinking
    ("anthropic", "claude-sonnet-4-5", {"thinking": {"type": "enabled",
                                                     "budget_tokens": 2048}}, True),
    ("anthropic", "claude-opus-4-6", {"thinking": {"type": "adaptive"}}, True),
    ("anthropic", "claude-sonnet-4-5", {"thinking": {"type": "disabled"}}, False),
    ("anthropic", "claude-sonnet-4-5", {}, False),
])
def test_which_requests_may_think_unseen(provider: str, model: str, extra: dict[str, Any],
                                         hidden: bool) -> None:
    from extproc.limits.reasoning import hidden_reasoning
    endpoint = "chat.completions" if provider == "openai" else \
        "streamGenerateContent" if provider == "gemini" else "messages"
    assert hidden_reasoning(provider, endpoint, model, {"model": model, **extra}) is hidden


async def test_a_model_that_thinks_unseen_pays_its_reservation(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Gemini 2.5 thinks by default, its thoughts hidden: they come before the first visible
    token and are billed as output, so a client that leaves after some text cannot be
    charged what it got (found by the spend audit, with an o3 stream): it pays its
    reservation. With the thinking off, it pays what it got (above)."""
    state, _ = await _left("gemini_thinking_call", False, monkeypatch)
    assert state["tokens_charged"] == state["ratelimit"]["reserved_tokens"]


def test_the_fronts_backends_think_unseen_unless_thinking_is_off() -> None:
    """On the unified front the chat request is what is read. Gemini thinks unless the
    effort is `none` (a `reasoning_effort` shows its thoughts, but as a summary of those
    billed: found by review, this test said otherwise until 2026-12-06); Anthropic thinks
    when an effort other than `none` is named."""
    from extproc.limits.reasoning import hidden_reasoning
    chat = {"model": "fast", "messages": []}
    assert hidden_reasoning("gemini", None, "gemini-2.5-flash", chat) is True
    assert hidden_reasoning("gemini", None, "gemini-2.5-flash",
                            {**chat, "reasoning_effort": "low"}) is True
    assert hidden_reasoning("gemini", None, "gemini-2.5-flash",
                            {**chat, "reasoning_effort": "none"}) is False
    assert hidden_reasoning("anthropic", None, "claude-sonnet-4-5", chat) is False
    assert hidden_reasoning("anthropic", None, "claude-sonnet-4-5",
                            {**chat, "reasoning_effort": "high"}) is True
    assert hidden_reasoning("anthropic", None, "claude-sonnet-4-5",
                            {**chat, "reasoning_effort": "none"}) is False
