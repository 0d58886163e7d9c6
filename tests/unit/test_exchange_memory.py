"""What an open stream keeps: once the reply's headers are handled, the request as read (the
parsed body, the prompt) is let go, so a reply that streams for minutes does not hold the
request's heap (it held about 13 times a body of tiny messages, 100 MiB for 8 MiB)."""

from __future__ import annotations

import gc
import json
import tracemalloc

from extproc import loader
from extproc.exchange import Exchange
from tests.unit.test_exchange import (
    one,
    request_body,
    request_headers,
    response_body,
    response_headers,
)

KEY = "gw-local-dev-key-DEV-ONLY"
SHA = "0d66f29d0ea708b5cec2c4ae833decdd2b59f7614d7c03ba6296e5e87d9709ca"
CONFIG = {
    "auth": {"api_keys": [{"id": "k", "sha256": SHA, "subject": "s"}]},
    "guards": {"pii": {"detectors": ["email", "phone", "card"], "action": "mask"}},
    "routes": [{"name": "openai", "provider": "openai", "auth": {"api_keys": True},
                "upstream_credential": {"env": "HOME"}, "guards": ["pii"],
                "rate_limits": [{"name": "tokens", "key": ["subject"],
                                 "tokens": [{"limit": 10**9, "per": "1m"}]}]}],
}


def _event(obj: dict[str, object]) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


async def test_an_open_stream_lets_go_of_the_parsed_request() -> None:
    config = loader.parse(CONFIG)
    messages = [{"role": "user", "content": "a"}] * 60_000   # about 1.7 MiB of tiny ones
    body = json.dumps({"model": "gpt-4o", "stream": True, "messages": messages},
                      separators=(",", ":")).encode()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        ex = Exchange(config.routes["openai"], "openai")
        await one(ex, request_headers({":path": "/v1/chat/completions",
                                       "authorization": f"Bearer {KEY}"}, req_mode=1,
                                      resp_mode=2), "request_headers")
        reply = await one(ex, request_body(body, True), "request_body")
        sent = reply.request_body.response.body_mutation.body   # the usage option added
        assert b'"include_usage":true' in sent
        await one(ex, response_headers(200, **{"content-type": "text/event-stream"}),
                  "response_headers")
        del reply, sent
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < len(body) // 4, held   # it held about 13 times the body before
    # the reply side still has all it needs: the usage is read, counted and cut out
    chunk = {"id": "c", "object": "chat.completion.chunk", "model": "gpt-4o",
             "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]}
    usage = {"id": "c", "object": "chat.completion.chunk", "model": "gpt-4o", "choices": [],
             "usage": {"prompt_tokens": 60_001, "completion_tokens": 1, "total_tokens": 60_002}}
    out = await one(ex, response_body(_event(chunk) + _event(usage) + b"data: [DONE]\n\n",
                                      True), "response_body")
    assert b'"usage"' not in out.response_body.response.body_mutation.body
    assert ex.state["usage"].input_tokens == 60_001
    for policy in config.routes["openai"].finishers:
        await policy.on_finish(ex)
    assert ex.state["tokens_charged"] == 60_002
