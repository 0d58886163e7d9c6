"""Found by review: an Anthropic extended-thinking stream that ends without its final usage
report (an `error` event mid-thinking, or the upstream ending the body) is charged what its
`message_start` said (output_tokens: 1) plus what it delivered, not its reservation.

`limits.reasoning` says a request whose model thinks unseen and whose stream "ends without
the provider's final usage report (the client left, the upstream broke)" pays its
reservation; `limits.settle.actual_tokens` and `spending.charge` apply that only when no
report at all came (`reported is None` / `not reported`), and every Anthropic stream starts
with `message_start`, a report that never counts the thinking. The same request to an OpenAI
reasoning model (no report before the end) pays its reservation; Gemini's running report
counts its thoughts. A partial report without a thinking count no longer counts as one
that counted the thinking: such a stream pays its reservation.
"""

from __future__ import annotations

import json
from decimal import Decimal

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


START = _event({"type": "message_start", "message": {
    "id": "msg_1", "type": "message", "role": "assistant", "content": [],
    "model": "claude-sonnet-4-5", "stop_reason": None, "stop_sequence": None,
    "usage": {"input_tokens": 12, "output_tokens": 1}}})
THINKING = _event({"type": "content_block_start", "index": 0,
                   "content_block": {"type": "thinking", "thinking": "", "signature": ""}})
OVERLOADED = _event({"type": "error", "error": {"type": "overloaded_error",
                                                 "message": "Overloaded"}})


@pytest.mark.parametrize("ending", ["error_event", "upstream_ends"])
@pytest.mark.parametrize("display", ["omitted", "summarized"])
async def test_thinking_stream_without_final_report_pays_reservation(
        display: str, ending: str) -> None:
    rname = f"anth-{display}-{ending}".replace("_", "-")
    cfg = loader.parse({
        "prices": {"models": [{"provider": "anthropic", "model": "claude-sonnet-4-5",
                               "input": 3, "output": 15}]},
        "routes": [{"name": rname, "provider": "anthropic", "rate_limits": [{
            "name": "t", "key": [], "tokens": [{"limit": 10 ** 6, "per": "1d"}],
            "spend": [{"limit": 100, "per": "1d"}]}]}]})
    r = cfg.route(rname)
    ex = Exchange(r, rname)
    req = {"model": "claude-sonnet-4-5", "max_tokens": 32000, "stream": True,
           "thinking": {"type": "enabled", "budget_tokens": 30000, "display": display},
           "messages": [{"role": "user", "content": "prove the theorem"}]}
    await send(ex, request_headers(req_mode=P.BUFFERED, resp_mode=P.STREAMED,
                                   path="/v1/messages"))
    await send(ex, request_body(json.dumps(req).encode(), True))
    await send(ex, response_headers(200, **{"content-type": "text/event-stream"}))
    frames = [START, THINKING]
    if display == "summarized":
        frames.append(_event({"type": "content_block_delta", "index": 0, "delta": {
            "type": "thinking_delta", "thinking": "Considering the base case."}}))
    frames += [_event({"type": "ping"})] * 30      # minutes of (billed) thinking
    if ending == "error_event":
        frames.append(OVERLOADED)
    for f in frames:
        await send(ex, response_body(f, False))
    await send(ex, response_body(b"", True))        # the upstream ends the body
    for p in r.finishers:
        await p.on_finish(ex)
    reserved_tokens = ex.state["ratelimit"]["reserved_tokens"]
    reserved_spend = Decimal(ex.state["ratelimit"]["reserved_spend"])
    # as the OpenAI-reasoning and client-left cases: the thinking no stream showed is
    # billed, so the reservation is charged (today: 13 tokens, 0.000051 USD)
    assert ex.state["tokens_charged"] >= reserved_tokens, \
        (ex.state["tokens_charged"], reserved_tokens)
    assert ex.state["spend_charged"] >= reserved_spend, \
        (ex.state["spend_charged"], reserved_spend)


async def test_openai_reasoning_same_ending_pays_reservation() -> None:
    """The contrast (passes today): an o-series stream broken the same way."""
    rname = "oai-broken"
    cfg = loader.parse({"routes": [{"name": rname, "provider": "openai", "rate_limits": [{
        "name": "t", "key": [], "tokens": [{"limit": 10 ** 6, "per": "1d"}]}]}]})
    r = cfg.route(rname)
    ex = Exchange(r, rname)
    req = {"model": "o3", "max_completion_tokens": 32000, "stream": True,
           "messages": [{"role": "user", "content": "prove the theorem"}]}
    await send(ex, request_headers(req_mode=P.BUFFERED, resp_mode=P.STREAMED,
                                   path="/v1/chat/completions"))
    await send(ex, request_body(json.dumps(req).encode(), True))
    await send(ex, response_headers(200, **{"content-type": "text/event-stream"}))
    await send(ex, response_body(b'data: {"id":"c","object":"chat.completion.chunk",'
                                 b'"choices":[{"index":0,"delta":{"role":"assistant",'
                                 b'"content":""}}],"usage":null}\n\n', False))
    await send(ex, response_body(b'data: {"error":{"message":"server_error"}}\n\n', False))
    await send(ex, response_body(b"", True))
    for p in r.finishers:
        await p.on_finish(ex)
    assert ex.state["tokens_charged"] >= ex.state["ratelimit"]["reserved_tokens"]
