"""A stream whose thinking is not streamed as it is billed, left by its client mid-thinking,
pays its reservation (found by review). Anthropic bills the thinking the model generates,
but with `thinking.display: "omitted"` the thinking block carries no text at all (only a
signature at its end), and Claude 4's default summarized thinking streams a summary; a
Gemini request with `includeThoughts` streams thought summaries. Such a client was charged
the prompt estimate plus what it got: a few tokens of a 32,000-token reservation."""

from __future__ import annotations

import json

import pytest

from extproc import loader
from extproc import protocol as P
from extproc.exchange import Exchange
from tests.unit.test_exchange import (
    request_body,
    request_headers,
    response_body,
    response_headers,
    send,
)


def _event(doc: dict) -> bytes:
    return f"event: {doc['type']}\ndata: {json.dumps(doc, separators=(',', ':'))}\n\n".encode()


@pytest.mark.parametrize("display", ["omitted", "summarized"])
async def test_left_mid_thinking_pays_like_hidden_reasoning(
        display: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rname = f"anth-{display}"
    cfg = loader.parse({"routes": [{"name": rname, "provider": "anthropic", "rate_limits": [{
        "name": "t", "key": [], "tokens": [{"limit": 10 ** 6, "per": "1d"}]}]}]})
    r = cfg.route(rname)
    ex = Exchange(r, rname)
    req = {"model": "claude-sonnet-4-5", "max_tokens": 32000, "stream": True,
           "thinking": {"type": "enabled", "budget_tokens": 30000, "display": display},
           "messages": [{"role": "user", "content": "prove the theorem"}]}
    await send(ex, request_headers(req_mode=P.BUFFERED, resp_mode=P.STREAMED,
                                   path="/v1/messages"))
    await send(ex, request_body(json.dumps(req).encode(), True))
    await send(ex, response_headers(200, **{"content-type": "text/event-stream"}))
    frames = [
        _event({"type": "message_start", "message": {
            "id": "msg_1", "type": "message", "role": "assistant", "content": [],
            "model": "claude-sonnet-4-5", "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": 1}}}),
        _event({"type": "content_block_start", "index": 0,
                "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
    ]
    if display == "summarized":   # a summary: a few words for many thinking tokens
        frames.append(_event({"type": "content_block_delta", "index": 0, "delta": {
            "type": "thinking_delta", "thinking": "Considering the base case."}}))
    frames += [_event({"type": "ping"})] * 30   # the model thinks; the client waits, leaves
    for f in frames:
        await send(ex, response_body(f, False))
    ex.close()
    for p in r.finishers:
        await p.on_finish(ex)
    reserved = ex.state["ratelimit"]["reserved_tokens"]
    # Anthropic bills the thinking generated until the client left (up to 30000 tokens);
    # a model that thinks unseen pays its reservation (as OpenAI reasoning and Gemini 2.5
    # do); here it pays about the prompt
    assert ex.state["tokens_charged"] >= reserved, (ex.state["tokens_charged"], reserved)


async def test_gemini_running_usage_is_dropped_when_the_client_leaves(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`includeThoughts: true` streams thought *summaries* (Google bills the full thoughts):
    the request thinks unseen, and a client that leaves pays its reservation (the running
    report that came, 5000 thought tokens, is not published when the client leaves)."""
    rname = "gem-left"
    cfg = loader.parse({"routes": [{"name": rname, "provider": "gemini", "rate_limits": [{
        "name": "t", "key": [], "tokens": [{"limit": 10 ** 6, "per": "1d"}]}]}]})
    r = cfg.route(rname)
    ex = Exchange(r, rname)
    req = {"contents": [{"role": "user", "parts": [{"text": "prove it"}]}],
           "generationConfig": {"maxOutputTokens": 30000,
                                "thinkingConfig": {"includeThoughts": True}}}
    await send(ex, request_headers(
        req_mode=P.BUFFERED, resp_mode=P.STREAMED,
        path="/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"))
    await send(ex, request_body(json.dumps(req).encode(), True))
    await send(ex, response_headers(200, **{"content-type": "text/event-stream"}))
    element = {"candidates": [{"content": {"parts": [
        {"text": "**Planning** a proof.", "thought": True}], "role": "model"}, "index": 0}],
        "usageMetadata": {"promptTokenCount": 4, "thoughtsTokenCount": 5000,
                          "totalTokenCount": 5004}}
    await send(ex, response_body(b"data: " + json.dumps(element).encode() + b"\r\n\r\n",
                                 False))
    ex.close()                       # the client leaves
    for p in r.finishers:
        await p.on_finish(ex)
    assert ex.state["tokens_charged"] >= 5004, ex.state["tokens_charged"]
