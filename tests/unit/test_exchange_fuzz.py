"""Whatever a client or a provider sends, the gateway never fails internally.

Each reference route (config/gateway.yaml: auth, rate limits, the PII guard, usage metering)
is fed a valid request and a valid provider reply, built by the mock provider, with random
JSON values put in random places of the request body and of the reply's events, the reply
cut at random points. Every message must get its reply, and no policy may raise: a raise is
a 500 "internal error" for the client, logged with a traceback. Bad input is the client's or
the provider's error, answered in their format, or passed on as it came.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extproc import config as cfgmod
from extproc import loader
from extproc import protocol as P
from extproc.auth.devtoken import DEV_API_KEY
from extproc.exchange import Exchange
from extproc.mock import anthropic as mock_anthropic
from extproc.mock import google as mock_google
from extproc.mock import openai as mock_openai
from extproc.mock.common import Reply
from tests.jsonfuzz import json_values, spoil
from tests.unit.test_exchange import (
    request_body,
    request_headers,
    response_body,
    response_headers,
    send,
)

REPO = Path(__file__).resolve().parents[2]


def _config(action: str = "mask") -> cfgmod.Config:
    """The reference config, its rate limits raised out of reach (one client sends all), its
    PII guard masking or rejecting."""
    source = REPO / "config" / "gateway.yaml"
    doc = yaml.safe_load(source.read_text())
    doc["guards"]["pii"]["action"] = action
    for route in doc["routes"]:
        for limit in route.get("rate_limits") or ():
            limit["requests"] = [{"limit": 10**9, "per": "1m"}]
            limit["tokens"] = [{"limit": 10**12, "per": "1m"}]
    return loader.parse(doc, source=str(source))


CONFIG = _config()
CONFIGS = {"mask": CONFIG, "reject": _config("reject")}
TEXT = "Mail jane.roe@example.org or call, the card is 4111 1111 1111 1111. Bye."

_JSON = json_values(["index", "text", "content", "parts", "type", "role", "delta", "usage",
                     "stream", "model", "choices", "candidates"])


def _request(route: str, stream: bool) -> tuple[str, dict[str, Any]]:
    """The path (as Envoy sends it, prefix and all) and a valid request body."""
    if route in ("openai", "azure"):
        path = "/openai/v1/chat/completions" if route == "openai" else \
            "/azure/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21"
        return path, {"model": "gpt-4o-mini", "stream": stream, "max_tokens": 50,
                      "messages": [{"role": "system", "content": "be brief"},
                                   {"role": "user", "content": [{"type": "text",
                                                                 "text": TEXT}]}]}
    if route == "anthropic":
        return "/anthropic/v1/messages", {
            "model": "claude-3-5-haiku-latest", "max_tokens": 50, "stream": stream,
            "system": "be brief", "messages": [{"role": "user", "content": TEXT}]}
    method = "streamGenerateContent" if stream else "generateContent"
    path = (f"/gemini/v1beta/models/gemini-2.5-flash:{method}" if route == "gemini" else
            "/vertex/v1/projects/p/locations/us-central1/publishers/google/models/"
            f"gemini-2.5-flash:{method}")
    return path, {"contents": [{"role": "user", "parts": [{"text": TEXT}]}],
                  "generationConfig": {"maxOutputTokens": 50}}


def _reply(route: str, body: dict[str, Any], stream: bool, sse: bool
           ) -> tuple[str, list[bytes]]:
    """The provider's content type and frames (one frame: the whole body)."""
    reply = Reply.make(TEXT, "model-x", "rid", 1795721497.0, 7)
    if route in ("openai", "azure"):
        body = {**body, "stream_options": {"include_usage": True}}
        if stream:
            return "text/event-stream", mock_openai.build_stream(body, reply)
        return "application/json", [mock_openai.build_response(body, reply)]
    if route == "anthropic":
        if stream:
            return "text/event-stream", mock_anthropic.build_stream(body, reply)
        return "application/json", [mock_anthropic.build_response(body, reply)]
    vertex = route == "vertex"
    if stream:
        frames = mock_google.build_stream(body, reply, sse=sse, vertex=vertex)
        return ("text/event-stream" if sse else "application/json"), frames
    return "application/json", [mock_google.build_response(body, reply, vertex=vertex)]


def _mutate_frame(frame: bytes, data: st.DataObject) -> bytes:
    """A frame with random values in its JSON (SSE data or a JSON-array element)."""
    times = data.draw(st.integers(0, 2))
    if not times:
        return frame
    text = frame.decode()
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        return frame
    try:
        doc = json.loads(text[start:end + 1])
    except ValueError:
        return frame
    doc = spoil(doc, data, _JSON, times)
    return (text[:start] + json.dumps(doc) + text[end + 1:]).encode()


async def _run(route: str, msgs: list[Any], config: cfgmod.Config = CONFIG) -> Exchange:
    """Play Envoy's side; check one reply per message (outside FULL_DUPLEX_STREAMED), and
    that a FULL_DUPLEX_STREAMED response body is ended."""
    ex = Exchange(config.route(route), route, config.server.max_request_body_bytes)
    duplex_ended = False
    request_replies: list[str] = []   # the request side's reply kinds, in FULL_DUPLEX
    for msg in msgs:
        replies = await send(ex, msg)
        kind = msg.WhichOneof("request")
        if kind in ("request_headers", "request_body") and ex.request_mode == P.FULL_DUPLEX:
            # N:M, the headers' reply held for the body's verdict: one headers reply,
            # before any body reply, or one refusal alone
            kinds = [r.WhichOneof("response") for r in replies]
            if "immediate_response" in kinds:
                assert kinds == ["immediate_response"], kinds
            request_replies += kinds
        elif kind == "response_body" and ex.response_mode == P.FULL_DUPLEX:
            duplex_ended = duplex_ended or any(
                r.response_body.response.body_mutation.streamed_response.end_of_stream
                for r in replies if r.WhichOneof("response") == "response_body")
        else:
            assert len(replies) == 1, (kind, replies)
        if ex.done:   # refused (a client error): the stream ends here
            break
    else:
        if ex.response_mode == P.FULL_DUPLEX and not ex.failed:
            assert duplex_ended, "the response body was never ended"
    if request_replies and request_replies != ["immediate_response"]:
        assert request_replies[0] == "request_headers", request_replies
        assert request_replies.count("request_headers") == 1, request_replies
        assert request_replies[-1] == "request_body", request_replies
    ex.close()
    return ex


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(route=st.sampled_from(sorted(CONFIG.routes)), stream=st.booleans(), sse=st.booleans(),
       mode=st.sampled_from([P.STREAMED, P.STREAMED, P.BUFFERED, P.FULL_DUPLEX]),
       req_mode=st.sampled_from([P.BUFFERED, P.BUFFERED, P.FULL_DUPLEX]),
       action=st.sampled_from(sorted(CONFIGS)), data=st.data())
def test_random_values_anywhere_never_fail_the_gateway(route: str, stream: bool, sse: bool,
                                                       mode: int, req_mode: int, action: str,
                                                       data: st.DataObject) -> None:
    path, valid = _request(route, stream)
    ctype, frames = _reply(route, valid, stream, sse)
    if stream and route in ("gemini", "vertex") and sse:
        path += "?alt=sse"
    sent = spoil(json.loads(json.dumps(valid)), data, _JSON, data.draw(st.integers(0, 2)))
    body = json.dumps(sent).encode()
    raw = b"".join(_mutate_frame(f, data) for f in frames)
    cuts = [] if mode == P.BUFFERED else \
        sorted(set(data.draw(st.lists(st.integers(0, len(raw)), max_size=6))))
    chunks = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    if req_mode == P.FULL_DUPLEX:   # Envoy streams the request body too (both ways duplex)
        mode = P.FULL_DUPLEX
        at = sorted(set(data.draw(st.lists(st.integers(0, len(body)), max_size=3))))
        parts = [body[a:b] for a, b in zip([0, *at], [*at, len(body)], strict=True)]
    else:
        parts = [body]
    msgs = [
        request_headers({":path": path, "authorization": f"Bearer {DEV_API_KEY}",
                         "content-length": str(len(body))},
                        req_mode=req_mode, resp_mode=mode),
        *[request_body(p, i == len(parts) - 1) for i, p in enumerate(parts)],
        response_headers(200, **{"content-type": ctype}),
        *[response_body(c, i == len(chunks) - 1) for i, c in enumerate(chunks)],
    ]
    ex = asyncio.run(_run(route, msgs, CONFIGS[action]))
    assert not ex.failed, "a policy raised: the client got a 500 internal error"



@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(route=st.sampled_from(sorted(CONFIG.routes)), stream=st.booleans(), data=st.data())
def test_garbage_bodies_statuses_and_headers_never_fail_the_gateway(
        route: str, stream: bool, data: st.DataObject) -> None:
    """Bodies that are random bytes or cut short, any status, any content type, odd header
    values: refused, passed on or ended with an error event, never a policy raising."""
    path, valid = _request(route, stream)
    ctype, frames = _reply(route, valid, stream, sse=True)

    def spoil(whole: bytes) -> bytes:
        kind = data.draw(st.sampled_from(["as sent", "random bytes", "cut short"]))
        if kind == "random bytes":
            return data.draw(st.binary(max_size=200))
        if kind == "cut short":
            return whole[:data.draw(st.integers(0, len(whole)))]
        return whole

    body, raw = spoil(json.dumps(valid).encode()), spoil(b"".join(frames))
    status = data.draw(st.sampled_from(["200", "200", "400", "503", "abc", "", "99999"]))
    ctype = data.draw(st.sampled_from([ctype, "text/event-stream", "application/json",
                                       "application/json; charset=utf-8", "text/plain", ""]))
    odd = data.draw(st.dictionaries(
        st.sampled_from(["content-encoding", "content-length", "x-request-id", "accept",
                         "anthropic-version", "x-goog-api-key"]),
        st.binary(max_size=8), max_size=3))
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(raw)), max_size=6))))
    chunks = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    msgs = [
        request_headers({":path": path, "authorization": f"Bearer {DEV_API_KEY}", **odd},
                        req_mode=P.BUFFERED, resp_mode=P.STREAMED),
        request_body(body, True),
        response_headers(status, **{"content-type": ctype}),
        *[response_body(c, i == len(chunks) - 1) for i, c in enumerate(chunks)],
    ]
    ex = asyncio.run(_run(route, msgs))
    assert not ex.failed, "a policy raised: the client got a 500 internal error"
