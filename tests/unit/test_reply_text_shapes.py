"""A reply whose text field holds a list or an object instead of a string (found by review:
no provider writes one, but the Anthropic SDK builds its stream events without validation and
shows such a `delta.text` whole, and google-genai quotes the value in its error, while the
guards read text fields only as strings, so an address in one went out unmasked). In a
stream such an event is unreadable: the stream ends refused. A whole reply's is read whole,
every string, key and number of it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from extproc.providers import adapter_for
from extproc.providers.openai_legacy import OpenAICompletionsAdapter
from extproc.providers.slots import NotText
from tests.unit.test_reply_as_sdks_read import EMAIL, GEMINI, MESSAGES, exchange, exchange_typed

START = (b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","type":'
         b'"message","role":"assistant","model":"c","content":[],"stop_reason":null,'
         b'"usage":{"input_tokens":1,"output_tokens":1}}}\n\n')
STREAM = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
SHAPES = [[f"mail {EMAIL}"], {"t": f"mail {EMAIL}"}]


def event(name: str, doc: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(doc)}\n\n".encode()


def block_start(block: dict[str, Any]) -> bytes:
    return event("content_block_start", {"type": "content_block_start", "index": 0,
                                         "content_block": block})


def delta(field: str, kind: str, value: Any) -> bytes:
    return event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                         "delta": {"type": kind, field: value}})


END = [event("content_block_stop", {"type": "content_block_stop", "index": 0}),
       event("message_stop", {"type": "message_stop"})]


@pytest.mark.parametrize("value", SHAPES, ids=["list", "object"])
@pytest.mark.parametrize("events", [
    lambda v: [block_start({"type": "text", "text": ""}), delta("text", "text_delta", v)],
    lambda v: [block_start({"type": "thinking", "thinking": ""}),
               delta("thinking", "thinking_delta", v)],
    lambda v: [block_start({"type": "text", "text": v})],
], ids=["text_delta", "thinking_delta", "block_start"])
def test_an_anthropic_stream_text_that_is_not_a_string_ends_the_stream(
        events: Any, value: Any) -> None:
    _status, body, _ = exchange_typed("anthropic", "/v1/messages", MESSAGES, 200,
                                     "text/event-stream", [START, *events(value), *END],
                                     stream=True)
    assert EMAIL.encode() not in body
    assert b"event: error" in body                # refused in the stream, as Anthropic does
    assert b"message_stop" not in body


@pytest.mark.parametrize("value", SHAPES, ids=["list", "object"])
def test_a_gemini_stream_text_that_is_not_a_string_ends_the_stream(value: Any) -> None:
    doc = {"candidates": [{"content": {"role": "model", "parts": [{"text": value}]},
                           "index": 0}]}
    _status, body, _ = exchange_typed("gemini", STREAM, GEMINI, 200, "text/event-stream",
                                     [f"data: {json.dumps(doc)}\r\n\r\n".encode()],
                                     stream=True)
    assert EMAIL.encode() not in body
    assert b'"error"' in body


@pytest.mark.parametrize("value", SHAPES, ids=["list", "object"])
@pytest.mark.parametrize("kind", ["text", "thinking"])
def test_a_whole_anthropic_reply_reads_such_a_text_whole(kind: str, value: Any) -> None:
    reply = {"id": "m", "type": "message", "role": "assistant", "model": "c",
             "content": [{"type": kind, kind: value}], "stop_reason": "end_turn",
             "usage": {"input_tokens": 1, "output_tokens": 1}}
    request = json.dumps({**json.loads(MESSAGES), "stream": False})
    status, body = exchange("anthropic", "/v1/messages", request, 200, "application/json",
                            [json.dumps(reply).encode()])
    assert status is None and EMAIL.encode() not in body
    assert b"<EMAIL>" in body


def test_a_whole_gemini_reply_reads_such_a_text_whole() -> None:
    reply = {"candidates": [{"content": {"role": "model", "parts": [{"text": SHAPES[1]}]},
                             "index": 0}]}
    status, body = exchange("gemini", "/v1beta/models/gemini-2.5-flash:generateContent",
                            GEMINI, 200, "application/json", [json.dumps(reply).encode()])
    assert status is None and EMAIL.encode() not in body and b"<EMAIL>" in body


@pytest.mark.parametrize("provider,doc", [
    ("openai", {"choices": [{"index": 0, "delta": {"audio": {"transcript": ["x"]}}}]}),
    ("openai", {"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "custom": {"input": {"a": "x"}}}]}}]}),
])
def test_openai_text_fields_that_are_not_strings_are_unreadable(provider: str,
                                                               doc: dict[str, Any]) -> None:
    with pytest.raises(NotText):
        adapter_for(provider).stream_texts(doc)
    with pytest.raises(NotText):   # the legacy Completions API's text
        OpenAICompletionsAdapter("openai").stream_texts({"choices": [{"index": 0, "text": ["x"]}]})


def test_empty_or_null_text_fields_are_no_text() -> None:
    adapter = adapter_for("anthropic")
    for value in (None, "", [], {}):
        texts = adapter.stream_texts({"type": "content_block_delta", "index": 0,
                                      "delta": {"type": "text_delta", "text": value}})
        assert texts.slots == []


# --- the review of the first fix: the other text fields ----------------------------------

CHAT_STREAM = json.dumps({"model": "gpt-4o-mini", "stream": True,
                          "messages": [{"role": "user", "content": "hi"}]})
RESPONSES = json.dumps({"model": "gpt-4o-mini", "stream": True, "input": "hi"})
HIDDEN = {"v": EMAIL}


def _sse(doc: dict[str, Any], name: str | None = None) -> bytes:
    return ((f"event: {name}\n" if name else "") + f"data: {json.dumps(doc)}\n\n").encode()


def _chat(delta: dict[str, Any]) -> list[bytes]:
    head = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    return [_sse({**head, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}),
            _sse({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
            b"data: [DONE]\n\n"]


def _responses(kind: str, **doc: Any) -> list[bytes]:
    return [_sse({"type": kind, "sequence_number": 0, "item_id": "m", "output_index": 0,
                  **doc}, kind)]


@pytest.mark.parametrize(("route", "path", "request_", "chunks"), [
    ("openai", "/v1/chat/completions", CHAT_STREAM,
     _chat({"content": [{"type": "text", "text": HIDDEN}]})),
    ("openai", "/v1/chat/completions", CHAT_STREAM,
     _chat({"refusal": [{"type": "refusal", "refusal": [EMAIL]}]})),
    ("openai", "/v1/chat/completions", CHAT_STREAM, _chat({"tool_calls": [
        {"index": 0, "id": "t", "type": "function",
         "function": {"name": HIDDEN, "arguments": ""}}]})),
    ("openai", "/v1/chat/completions", CHAT_STREAM,
     _chat({"function_call": {"name": HIDDEN, "arguments": ""}})),
    ("openai", "/v1/responses", RESPONSES,
     _responses("response.output_text.delta", content_index=0, delta=HIDDEN)),
    ("openai", "/v1/responses", RESPONSES,
     _responses("response.function_call_arguments.delta", delta=HIDDEN)),
    ("openai", "/v1/responses", RESPONSES,
     _responses("response.reasoning_summary_text.delta", summary_index=0, delta=[EMAIL])),
    ("anthropic", "/v1/messages", MESSAGES, [START, block_start(
        {"type": "tool_use", "id": "t", "name": HIDDEN, "input": {}})]),
], ids=["chat-part", "chat-refusal-part", "chat-tool-name", "chat-function-name",
        "responses-text", "responses-arguments", "responses-summary", "anthropic-tool-name"])
def test_other_stream_text_fields_that_are_not_strings_end_the_stream(
        route: str, path: str, request_: str, chunks: list[bytes]) -> None:
    _status, body, _ = exchange_typed(route, path, request_, 200, "text/event-stream",
                                      chunks, stream=True)
    assert EMAIL.encode() not in body
    assert b"error" in body


@pytest.mark.parametrize(("path", "reply"), [
    ("/v1/chat/completions", {"id": "c", "object": "chat.completion", "created": 1,
                              "model": "m", "choices": [{"index": 0, "finish_reason": "stop",
                                                         "message": {
                                                             "role": "assistant",
                                                             "content": [{"type": "text",
                                                                          "text": HIDDEN}]}}]}),
    ("/v1/chat/completions", {"id": "c", "object": "chat.completion", "created": 1,
                              "model": "m", "choices": [{"index": 0, "finish_reason": "stop",
                                                         "message": {
                                                             "role": "assistant",
                                                             "tool_calls": [{
                                                                 "id": "t",
                                                                 "type": "function",
                                                                 "function": {
                                                                     "name": HIDDEN,
                                                                     "arguments": "{}"}}]}}]}),
    ("/v1/responses", {"id": "r", "object": "response", "status": "completed",
                       "output": [{"type": "message", "id": "m", "role": "assistant",
                                   "content": [{"type": "output_text", "text": HIDDEN,
                                                "annotations": []}]}]}),
], ids=["chat-part", "chat-tool-name", "responses-text"])
def test_other_whole_reply_text_fields_that_are_not_strings_are_read(
        path: str, reply: dict[str, Any]) -> None:
    request = json.dumps({**json.loads(RESPONSES if "responses" in path else CHAT_STREAM),
                          "stream": False})
    status, body = exchange("openai", path, request, 200, "application/json",
                            [json.dumps(reply).encode()])
    assert EMAIL.encode() not in body, body
    assert status is not None or b"<EMAIL>" in body
