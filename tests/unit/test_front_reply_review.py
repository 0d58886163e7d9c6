"""The unified front's replies against its reply guards (found by review, each failed on the
code before its fix):

* a whole 200 reply the front cannot translate (a Google error object inside it, a finish
  reason or an Anthropic block type it cannot express) is refused with an error made of the
  backend's text, answered at once, so no reply guard read it: on a route whose guards read
  replies that text is withheld;
* an Anthropic message_delta whose output count is null was taken by the front's stream
  translator for the final count (message_start's 1 token): it pays its reservation, as the
  native route charges at least what was delivered.

Tests named `control_*` show the same text guarded elsewhere (non-200 errors, streams, the
native routes) and what was checked and found sound.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from extproc import loader
from extproc import protocol as P
from extproc.exchange import Exchange
from tests.unit.test_exchange import (
    replacement,
    request_body,
    request_headers,
    response_body,
    response_headers,
    send,
)

EMAIL = "jane.doe@example.org"
_ROUTES = (f"frontrev{i}" for i in itertools.count())


def _route(backend: str, **extra: Any) -> tuple[Any, str]:
    rname = next(_ROUTES)
    be: dict[str, Any] = {"upstream_credential": {"env": "FAKE_KEY"}}
    if backend == "vertex":
        be.update(project="p", location="us-central1")
    cfg = loader.parse({
        "guards": {"pii": {"detectors": ["email", "card"], "action": "mask"}},
        "routes": [{"name": rname, "provider": "openai-compatible", "auth": "none",
                    "guards": ["pii"], "backends": {backend: be},
                    "models": [{"model": "front-*", "backend": backend, "target": "m-*"}],
                    **extra}]})
    return cfg.route(rname), rname


async def _exchange(backend: str, req: dict[str, Any], status: int, ctype: str,
                    frames: list[bytes], monkeypatch: pytest.MonkeyPatch,
                    resp_mode: int = P.BUFFERED, **extra: Any) -> list[Any]:
    monkeypatch.setenv("FAKE_KEY", "k")
    r, rname = _route(backend, **extra)
    ex = Exchange(r, rname)
    await send(ex, request_headers(req_mode=P.BUFFERED, resp_mode=resp_mode,
                                   path="/v1/chat/completions"))
    out = await send(ex, request_body(json.dumps(req).encode(), True))
    replies = list(out)
    replies += await send(ex, response_headers(status, **{"content-type": ctype}))
    for i, f in enumerate(frames):
        replies += await send(ex, response_body(f, i == len(frames) - 1))
    return replies


def _all_bytes(replies: list[Any]) -> bytes:
    """Everything the client could see: replacement bodies, streamed bodies, immediate
    responses."""
    out = b""
    for r in replies:
        which = r.WhichOneof("response")
        if which == "immediate_response":
            out += r.immediate_response.body
        elif which in ("response_body",):
            body = replacement(r)
            if body:
                out += body
        if which == "streamed_response_body" or (which == "response_body"):
            pass
    return out


MSG = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("backend", ["gemini", "vertex"])
async def test_a_200_google_error_in_a_whole_front_reply_is_guarded(
        backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A whole Gemini reply of 200 carrying Google's error object is turned by the
    translator into a Reject whose message is the backend's text: it goes to the client as
    an immediate response that no reply guard reads."""
    body = json.dumps({"error": {"code": 400, "status": "INVALID_ARGUMENT",
                                 "message": f"cannot email {EMAIL}"}}).encode()
    replies = await _exchange(backend, {"model": "front-x", "messages": MSG}, 200,
                              "application/json", [body], monkeypatch)
    seen = _all_bytes(replies)
    assert seen, replies
    assert EMAIL.encode() not in seen, seen


@pytest.mark.parametrize("backend", ["gemini", "vertex"])
async def test_a_google_finish_reason_in_a_whole_front_reply_is_guarded(
        backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unknown finishReason becomes the message and the code of a 502 Reject."""
    body = json.dumps({"candidates": [{"content": {"role": "model", "parts": [
        {"text": "ok"}]}, "finishReason": EMAIL}],
        "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1}}).encode()
    replies = await _exchange(backend, {"model": "front-x", "messages": MSG}, 200,
                              "application/json", [body], monkeypatch)
    seen = _all_bytes(replies)
    assert seen, replies
    assert EMAIL.encode() not in seen, seen


@pytest.mark.parametrize("backend", ["gemini", "anthropic"])
async def test_control_a_400_error_on_the_front_is_guarded(
        backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Control (passes): the same text in a 400 is read by the reply guards."""
    if backend == "gemini":
        body = {"error": {"code": 400, "status": "INVALID_ARGUMENT",
                          "message": f"cannot email {EMAIL}"}}
    else:
        body = {"type": "error", "error": {"type": "invalid_request_error",
                                           "message": f"cannot email {EMAIL}"}}
    replies = await _exchange(backend, {"model": "front-x", "messages": MSG}, 400,
                              "application/json", [json.dumps(body).encode()], monkeypatch)
    seen = _all_bytes(replies)
    assert seen and EMAIL.encode() not in seen, seen


async def test_an_anthropic_block_type_in_a_whole_front_reply_is_guarded(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The translator quotes an unknown block's type in the 502 it answers."""
    body = json.dumps({"type": "message", "id": "msg_1", "role": "assistant",
                       "content": [{"type": EMAIL}], "stop_reason": "end_turn",
                       "usage": {"input_tokens": 1, "output_tokens": 1}}).encode()
    replies = await _exchange("anthropic", {"model": "front-x", "messages": MSG}, 200,
                              "application/json", [body], monkeypatch)
    seen = _all_bytes(replies)
    assert seen and EMAIL.encode() not in seen, seen


def _streamed_bytes(replies: list[Any]) -> bytes:
    out = b""
    for r in replies:
        which = r.WhichOneof("response")
        if which == "immediate_response":
            out += r.immediate_response.body
        elif which == "response_body":
            m = r.response_body.response
            if m.HasField("body_mutation"):
                bm = m.body_mutation
                kind = bm.WhichOneof("mutation")
                if kind == "body":
                    out += bm.body
                elif kind == "streamed_response":
                    out += bm.streamed_response.body
    return out


async def test_control_google_finish_reason_in_a_front_stream(
        monkeypatch: pytest.MonkeyPatch) -> None:
    frame = b"data: " + json.dumps({"candidates": [{"content": {"role": "model", "parts": [
        {"text": "ok"}]}, "finishReason": EMAIL}]}).encode() + b"\r\n\r\n"
    replies = await _exchange("gemini", {"model": "front-x", "messages": MSG, "stream": True},
                              200, "text/event-stream", [frame], monkeypatch,
                              resp_mode=P.STREAMED)
    seen = _streamed_bytes(replies)
    assert seen and EMAIL.encode() not in seen, seen


def _anth_whole(blocks: list[dict[str, Any]], stop: str = "end_turn") -> bytes:
    return json.dumps({"type": "message", "id": "msg_1", "role": "assistant",
                       "content": blocks, "stop_reason": stop,
                       "usage": {"input_tokens": 1, "output_tokens": 1}}).encode()


def _gem_whole(parts: list[dict[str, Any]], reason: str = "STOP") -> bytes:
    return json.dumps({"candidates": [{"content": {"role": "model", "parts": parts},
                                       "finishReason": reason}],
                       "usageMetadata": {"promptTokenCount": 1,
                                         "candidatesTokenCount": 1}}).encode()


WHOLE_CASES = [
    ("anthropic", _anth_whole([{"type": "thinking", "thinking": EMAIL, "signature": "s"},
                               {"type": "text", "text": "x"}])),
    ("anthropic", _anth_whole([{"type": "tool_use", "id": "t", "name": "f",
                                "input": {"a": EMAIL}}], "tool_use")),
    ("anthropic", _anth_whole([{"type": "tool_use", "id": "t", "name": f"f {EMAIL}",
                                "input": {}}], "tool_use")),
    ("gemini", _gem_whole([{"text": EMAIL, "thought": True}, {"text": "x"}])),
    ("gemini", _gem_whole([{"functionCall": {"name": "f", "args": {EMAIL: 1}}}])),
]


@pytest.mark.parametrize(("backend", "body"), WHOLE_CASES)
async def test_control_whole_reply_fields(backend: str, body: bytes,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    replies = await _exchange(backend, {"model": "front-x", "messages": MSG}, 200,
                              "application/json", [body], monkeypatch)
    seen = _streamed_bytes(replies)
    assert seen and EMAIL.encode() not in seen, seen


def _anth_sse(text: str) -> list[bytes]:
    evs = [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_1", "type": "message", "role": "assistant", "content": [],
            "model": "m", "stop_reason": None, "usage": {"input_tokens": 1, "output_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": text}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                           "usage": {"output_tokens": 5}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    return [f"event: {n}\ndata: {json.dumps(d)}\n\n".encode() for n, d in evs]


@pytest.mark.parametrize("stream", [False, True])
async def test_control_anthropic_sse_reply(stream: bool,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    replies = await _exchange("anthropic", {"model": "front-x", "messages": MSG,
                                            "stream": stream}, 200,
                              "text/event-stream", _anth_sse(f"mail {EMAIL} now"), monkeypatch,
                              resp_mode=P.STREAMED if stream else P.BUFFERED)
    seen = _streamed_bytes(replies)
    assert seen and EMAIL.encode() not in seen, seen


@pytest.mark.parametrize("backend", ["gemini", "anthropic"])
async def test_control_error_code_in_a_front_stream(
        backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if backend == "gemini":
        frames = [b"data: " + json.dumps({"error": {"code": 500, "message": "x",
                                                    "status": EMAIL}}).encode() + b"\r\n\r\n"]
    else:
        error = {"type": "error", "error": {"type": EMAIL, "message": "x"}}
        frames = [*_anth_sse("hi")[:1],
                  b"event: error\ndata: " + json.dumps(error).encode() + b"\n\n"]
    replies = await _exchange(backend, {"model": "front-x", "messages": MSG, "stream": True},
                              200, "text/event-stream", frames, monkeypatch,
                              resp_mode=P.STREAMED)
    seen = _streamed_bytes(replies)
    assert seen and EMAIL.encode() not in seen, seen


async def test_control_native_gemini_route_reads_a_200_error_object(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Control (passes): the same reply on a native Gemini route is masked."""
    monkeypatch.setenv("FAKE_KEY", "k")
    rname = next(_ROUTES)
    cfg = loader.parse({
        "guards": {"pii": {"detectors": ["email", "card"], "action": "mask"}},
        "routes": [{"name": rname, "provider": "gemini", "auth": "none",
                    "upstream_credential": {"env": "FAKE_KEY"}, "guards": ["pii"]}]})
    ex = Exchange(cfg.route(rname), rname)
    await send(ex, request_headers(req_mode=P.BUFFERED, resp_mode=P.BUFFERED,
                                   path="/v1beta/models/gemini-2.5-flash:generateContent"))
    replies = list(await send(ex, request_body(json.dumps(
        {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}).encode(), True)))
    replies += await send(ex, response_headers(200, **{"content-type": "application/json"}))
    body = json.dumps({"error": {"code": 400, "status": "INVALID_ARGUMENT",
                                 "message": f"cannot email {EMAIL}"}}).encode()
    replies += await send(ex, response_body(body, True))
    seen = _streamed_bytes(replies)
    assert seen and EMAIL.encode() not in seen, seen


def _req_bytes(replies: list[Any]) -> bytes:
    out = b""
    for r in replies:
        which = r.WhichOneof("response")
        if which == "immediate_response":
            out += b"IMMEDIATE:" + r.immediate_response.body
        elif which == "request_body":
            m = r.request_body.response
            if m.HasField("body_mutation"):
                bm = m.body_mutation
                kind = bm.WhichOneof("mutation")
                if kind == "body":
                    out += bm.body
                elif kind == "streamed_response":
                    out += bm.streamed_response.body
    return out


REQ_CASES = {
    "tool_description": {"tools": [{"type": "function", "function": {
        "name": "f", "description": f"mail {EMAIL}", "parameters": {"type": "object"}}}]},
    "tool_schema": {"tools": [{"type": "function", "function": {
        "name": "f", "parameters": {"type": "object", "properties": {
            "a": {"type": "string", "description": EMAIL, "enum": [EMAIL]}}}}}]},
    "schema": {"response_format": {"type": "json_schema", "json_schema": {
        "name": "x", "schema": {"type": "object", "description": EMAIL}}}},
    "schema_key": {"response_format": {"type": "json_schema", "json_schema": {
        "name": "x", "schema": {"type": "object", "properties": {EMAIL: {}}}}}},
    "stop": {"stop": [EMAIL]},
    "user": {"user": EMAIL},
    "system_parts": {"messages": [{"role": "system", "content": [
        {"type": "text", "text": EMAIL}]}, *MSG]},
    "tool_result": {"messages": [*MSG, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"a": "' + EMAIL + '"}'}]},
    "tool_args": {"messages": [*MSG, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {
            "name": "f", "arguments": '{"a": "jane.doe\\u0040example.org"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"}]},
    "tool_args_key": {"messages": [*MSG, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {
            "name": "f", "arguments": '{"' + EMAIL + '": 1}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"}]},
    "refusal": {"messages": [*MSG, {"role": "assistant", "content": "x",
                                    "refusal": EMAIL}, *MSG]},
    "file_text": {"messages": [{"role": "user", "content": [
        {"type": "file", "file": {"filename": "a.txt", "file_data":
            "data:text/plain;base64," + __import__("base64").b64encode(
                EMAIL.encode()).decode()}}]}]},
    "file_name": {"messages": [{"role": "user", "content": [
        {"type": "file", "file": {"filename": EMAIL, "file_data":
            "data:text/plain;base64,aGk="}}]}]},
}


@pytest.mark.parametrize("backend", ["anthropic", "gemini"])
@pytest.mark.parametrize("case", sorted(REQ_CASES))
async def test_control_request_fields(backend: str, case: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_KEY", "k")
    r, rname = _route(backend, drop_unsupported=True)
    ex = Exchange(r, rname)
    req = {"model": "front-x", "messages": MSG, **REQ_CASES[case]}
    await send(ex, request_headers(req_mode=P.BUFFERED, resp_mode=P.BUFFERED,
                                   path="/v1/chat/completions"))
    out = _req_bytes(list(await send(ex, request_body(json.dumps(req).encode(), True))))
    assert out and EMAIL.encode() not in out, out
    assert b"jane.doe\\u0040" not in out, out


# ---- budgets: message_delta whose output count is null ---------------------------------------

from tests.unit import test_front_usage_unread as fu  # noqa: E402


def _frames_with_null_final_count(usage: bool) -> list[bytes]:
    """message_start's counts (one output token) and a message_delta whose output count
    is null: the translator takes it for the final count (`"output_tokens" in usage`)."""
    frames = []
    for frame in fu._anthropic_frames(True):
        head, _, data = frame.partition(b"data: ")
        doc = json.loads(data)
        if doc.get("type") == "message_delta":
            doc["usage"] = {"output_tokens": None}
        frames.append(head + b"data: " + json.dumps(doc).encode() + b"\n\n")
    return frames


async def test_a_front_stream_with_a_null_final_count_pays_its_reservation(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """As `test_a_front_stream_without_its_final_count_pays_its_reservation`, with the
    count given as null instead of left out: the native Anthropic route reads null as no
    report (`merge_usage`), the front's translator as the final one."""
    frames = _frames_with_null_final_count(True)
    monkeypatch.setattr(fu, "_anthropic_frames", lambda _usage: frames)
    state = await fu._stream("anthropic", True, monkeypatch)
    reserved = state["ratelimit"]["reserved_tokens"]
    assert state["tokens_charged"] >= reserved > fu.ASK, (state["tokens_charged"], reserved)


async def test_control_native_anthropic_route_with_a_null_final_count(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Control (passes): the native route charges at least the output delivered."""
    monkeypatch.setenv("FAKE_KEY", "k")
    rname = next(_ROUTES)
    cfg = loader.parse({"routes": [{
        "name": rname, "provider": "anthropic", "auth": "none",
        "upstream_credential": {"env": "FAKE_KEY"},
        "rate_limits": [{"name": "t", "key": [], "tokens": [{"limit": 10 ** 6,
                                                             "per": "1d"}]}]}]})
    r = cfg.route(rname)
    ex = Exchange(r, rname)
    req = {"model": "claude-sonnet-4-5", "stream": True, "max_tokens": fu.ASK,
           "messages": fu.MSG}
    await send(ex, request_headers(req_mode=P.BUFFERED, resp_mode=P.STREAMED,
                                   path="/v1/messages"))
    await send(ex, request_body(json.dumps(req).encode(), True))
    await send(ex, response_headers(200, **{"content-type": "text/event-stream"}))
    frames = _frames_with_null_final_count(True)
    for i, f in enumerate(frames):
        await send(ex, response_body(f, i == len(frames) - 1))
    ex.close()
    for p in r.finishers:
        await p.on_finish(ex)
    assert ex.state["tokens_charged"] > fu.N, ex.state["tokens_charged"]

