"""Pure-function tests of the mock LLM wire formats, control headers and helpers."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from extproc.mock import anthropic, google, openai
from extproc.mock.common import (
    DEFAULT_REPLY,
    Reply,
    RequestError,
    count_completion_tokens,
    count_prompt_tokens,
    decode_header_text,
    parse_json_object,
    split_pieces,
)
from extproc.mock.control import Control, ControlError, Plan, parse_control, plan_chunks

TEXT = "Hello there, wörld 日本!"
PIECES = ["Hello ", "there, ", "wörld ", "日本!"]


def make_reply(text: str = TEXT, model: str = "m-1", prompt_tokens: int = 5) -> Reply:
    return Reply.make(text, model, "abc123", 1_700_000_000.25, prompt_tokens)


def sse_data(frames: list[bytes], sep: bytes = b"\n\n") -> list[str]:
    """The ``data:`` payloads of SSE frames, checking each frame is exactly one event."""
    out = []
    for frame in frames:
        assert frame.endswith(sep) and frame.count(sep) == 1
        lines = frame[: -len(sep)].decode().split(sep[: len(sep) // 2].decode())
        data = [line[len("data: ") :] for line in lines if line.startswith("data: ")]
        assert len(data) == 1
        out.append(data[0])
    return out


# --- common -----------------------------------------------------------------------------


def test_split_pieces_keeps_whitespace_attached() -> None:
    assert split_pieces(TEXT) == PIECES
    assert split_pieces("  lead and trail  ") == ["  lead ", "and ", "trail  "]
    assert split_pieces("") == []
    assert split_pieces("   ") == ["   "]
    assert split_pieces("a\n\nb") == ["a\n\n", "b"]


@given(st.text())
def test_split_pieces_concatenation_is_identity(text: str) -> None:
    assert "".join(split_pieces(text)) == text


def test_default_reply_is_about_sixty_words() -> None:
    assert 50 <= len(split_pieces(DEFAULT_REPLY)) <= 70


def test_token_counts_are_deterministic() -> None:
    assert count_prompt_tokens([]) == 1
    assert count_prompt_tokens(["abcd"]) == 1
    assert count_prompt_tokens(["abcd", "e"]) == 2
    assert count_prompt_tokens(["x" * 401]) == 101
    assert count_completion_tokens(TEXT) == 4
    assert make_reply().completion_tokens == 4
    assert make_reply().total_tokens == 9
    request = {
        "messages": [{"role": "system", "content": "abcd"}, {"role": "user", "content": "e"}]
    }
    assert openai.prompt_tokens(request) == openai.prompt_tokens(request) == 2


def test_decode_header_text() -> None:
    latin1_view = "héllo 日本".encode().decode("latin-1")
    assert decode_header_text(latin1_view) == "héllo 日本"
    assert decode_header_text("héllo 日本") == "héllo 日本"
    assert decode_header_text("héllo") == "héllo"
    assert decode_header_text("plain") == "plain"
    surrogate_view = b"h\xe9llo".decode("utf-8", "surrogateescape")
    assert decode_header_text(surrogate_view) == "héllo"


def test_parse_json_object_rejects_non_objects() -> None:
    assert parse_json_object(b'{"a": 1}') == {"a": 1}
    for body in (b"not json", b"[1, 2]", b"\xff\xfe"):
        with pytest.raises(RequestError):
            parse_json_object(body)


# --- control ----------------------------------------------------------------------------


def test_parse_control() -> None:
    headers = {
        "x-mock-reply": "echo",
        "x-mock-chunk-bytes": "3",
        "x-mock-delay-ms": "10",
        "x-mock-status": "429",
        "x-mock-fail-after": "0",
    }
    control = parse_control(headers)
    assert control == Control("echo", 3, 10, 429, 0)
    assert control.echo
    assert parse_control({}) == Control()
    assert parse_control({"x-mock-status": "200"}).status is None


@pytest.mark.parametrize(
    "headers",
    [
        {"x-mock-chunk-bytes": "0"},
        {"x-mock-chunk-bytes": "abc"},
        {"x-mock-delay-ms": "-1"},
        {"x-mock-status": "700"},
        {"x-mock-fail-after": "-5"},
    ],
)
def test_parse_control_rejects_bad_values(headers: dict[str, str]) -> None:
    with pytest.raises(ControlError):
        parse_control(headers)


def test_plan_chunks() -> None:
    plan = Plan(200, {}, [b"abcde", b"fg"], streamed=True)
    assert plan_chunks(plan, Control()) == ([b"abcde", b"fg"], True)
    assert plan_chunks(plan, Control(chunk_bytes=3)) == ([b"abc", b"def", b"g"], True)
    single = Plan(200, {}, [b"abcde"])
    assert plan_chunks(single, Control()) == ([b"abcde"], False)
    assert plan_chunks(single, Control(chunk_bytes=2))[1] is True


# --- OpenAI -----------------------------------------------------------------------------


def test_openai_response_body() -> None:
    body = json.loads(openai.build_response({}, make_reply()))
    assert body["id"] == "chatcmpl-abc123"
    assert body["object"] == "chat.completion"
    assert body["created"] == 1_700_000_000
    assert body["model"] == "m-1"
    assert body["system_fingerprint"]
    choice = body["choices"][0]
    assert choice == {
        "index": 0,
        "message": {"role": "assistant", "content": TEXT, "refusal": None, "annotations": []},
        "logprobs": None,
        "finish_reason": "stop",
    }
    usage = body["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (5, 4, 9)
    assert usage["prompt_tokens_details"]["cached_tokens"] == 0
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 0


def test_openai_stream_without_usage() -> None:
    frames = openai.build_stream({"stream": True}, make_reply())
    payloads = sse_data(frames)
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and "usage" not in c for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[0]["choices"][0]["delta"]["content"] == ""
    contents = [c["choices"][0]["delta"]["content"] for c in chunks[1:-1]]
    assert contents == PIECES
    assert chunks[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert frames[1].startswith(b'data: {"id":"chatcmpl-abc123","object":"chat.completion.chunk"')


def test_openai_stream_with_usage() -> None:
    request = {"stream": True, "stream_options": {"include_usage": True}}
    chunks = [json.loads(p) for p in sse_data(openai.build_stream(request, make_reply()))[:-1]]
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 4
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


def test_openai_echo_extraction() -> None:
    assert openai.extract_echo({"messages": [{"role": "user", "content": "hi"}]}) == "hi"
    parts = [
        {"type": "text", "text": "one "},
        {"type": "image_url", "image_url": {"url": "data:,"}},
        {"type": "text", "text": "two"},
    ]
    request = {
        "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": parts},
            {"role": "assistant", "content": "reply"},
        ]
    }
    assert openai.extract_echo(request) == "one two"
    assert openai.extract_echo({"messages": [{"role": "system", "content": "x"}]}) == ""


def test_openai_validate() -> None:
    openai.validate({"messages": [{"role": "user", "content": "x"}]})
    for bad in ({}, {"messages": []}, {"messages": "x"}):
        with pytest.raises(RequestError):
            openai.validate(bad)


@pytest.mark.parametrize(
    ("status", "err_type", "code"),
    [
        (400, "invalid_request_error", None),
        (401, "authentication_error", "invalid_api_key"),
        (404, "invalid_request_error", "model_not_found"),
        (429, "rate_limit_error", "rate_limit_exceeded"),
        (500, "server_error", None),
        (503, "server_error", None),
        (418, "invalid_request_error", None),
    ],
)
def test_openai_error_body(status: int, err_type: str, code: str | None) -> None:
    error = json.loads(openai.error_body(status))["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["code"], error["param"]) == (err_type, code, None)
    assert error["message"]


# --- Anthropic --------------------------------------------------------------------------


def test_anthropic_response_body() -> None:
    body = json.loads(anthropic.build_response({}, make_reply()))
    assert body["id"] == "msg_abc123"
    assert (body["type"], body["role"], body["model"]) == ("message", "assistant", "m-1")
    assert body["content"] == [{"type": "text", "text": TEXT}]
    assert (body["stop_reason"], body["stop_sequence"]) == ("end_turn", None)
    usage = body["usage"]
    assert (usage["input_tokens"], usage["output_tokens"]) == (5, 4)
    assert usage["cache_creation_input_tokens"] == usage["cache_read_input_tokens"] == 0


def test_anthropic_event_sequence() -> None:
    frames = anthropic.build_stream({"stream": True}, make_reply())
    events = []
    for frame in frames:
        assert frame.endswith(b"\n\n") and frame.count(b"\n\n") == 1
        event_line, data_line = frame.decode()[:-2].split("\n")
        name = event_line.removeprefix("event: ")
        data = json.loads(data_line.removeprefix("data: "))
        assert data["type"] == name
        events.append(data)
    types = [e["type"] for e in events]
    assert types == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * 4,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[0]["message"]
    assert start["content"] == [] and start["stop_reason"] is None
    assert (start["usage"]["input_tokens"], start["usage"]["output_tokens"]) == (5, 1)
    assert events[1]["content_block"] == {"type": "text", "text": ""}
    deltas = [e["delta"] for e in events[3:7]]
    assert all(d["type"] == "text_delta" for d in deltas)
    assert "".join(d["text"] for d in deltas) == TEXT
    assert events[-2]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert events[-2]["usage"] == {"output_tokens": 4}


def test_anthropic_echo_and_prompt_tokens() -> None:
    request = {
        "system": [{"type": "text", "text": "abcdefgh"}],
        "messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t", "content": "r"},
                    {"type": "text", "text": "second"},
                ],
            },
        ],
    }
    assert anthropic.extract_echo(request) == "second"
    assert anthropic.prompt_tokens(request) == 6  # 8 + 5 + 2 + 6 = 21 chars
    assert anthropic.extract_echo({"messages": [{"role": "user", "content": "s"}]}) == "s"


@pytest.mark.parametrize(
    ("status", "err_type"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (529, "overloaded_error"),
    ],
)
def test_anthropic_error_body(status: int, err_type: str) -> None:
    body = json.loads(anthropic.error_body(status, request_id="req_1"))
    assert body["type"] == "error"
    assert body["error"]["type"] == err_type and body["error"]["message"]
    assert body["request_id"] == "req_1"


# --- Google -----------------------------------------------------------------------------


def test_google_parse_path() -> None:
    route = google.parse_path("/v1beta/models/gemini-2.0-flash:streamGenerateContent")
    assert route == google.GoogleRoute("gemini-2.0-flash", "streamGenerateContent", False, "v1beta")
    assert route.stream
    assert google.parse_path("/v1/models/g-1.5:generateContent") is not None
    assert google.parse_path("/v1alpha/models/g:generateContent") is not None
    vertex = google.parse_path(
        "/v1beta1/projects/p/locations/us-central1/publishers/google/models/gem:generateContent"
    )
    assert vertex == google.GoogleRoute("gem", "generateContent", True, "v1beta1")
    assert google.parse_path("/v1/publishers/google/models/gem:streamGenerateContent")
    assert google.parse_path("/v1beta/models/g:countTokens") is None
    assert google.parse_path("/v2/models/g:generateContent") is None
    assert google.parse_path("/v1beta/models/g") is None


def test_google_response_body() -> None:
    body = json.loads(google.build_response({}, make_reply()))
    assert body["candidates"] == [
        {
            "content": {"role": "model", "parts": [{"text": TEXT}]},
            "finishReason": "STOP",
            "index": 0,
        }
    ]
    usage = body["usageMetadata"]
    assert (usage["promptTokenCount"], usage["candidatesTokenCount"]) == (5, 4)
    assert usage["totalTokenCount"] == 9
    assert (body["modelVersion"], body["responseId"]) == ("m-1", "abc123")
    assert "createTime" not in body
    vertex = json.loads(google.build_response({}, make_reply(), vertex=True))
    assert vertex["createTime"] == "2023-11-14T22:13:20.250000Z"


def test_google_sse_stream() -> None:
    frames = google.build_stream({}, make_reply(), sse=True)
    events = [json.loads(p) for p in sse_data(frames, b"\r\n\r\n")]
    assert len(events) == 4
    texts = [e["candidates"][0]["content"]["parts"][0]["text"] for e in events]
    assert texts == PIECES
    assert [e["usageMetadata"]["candidatesTokenCount"] for e in events] == [1, 2, 3, 4]
    assert [e["candidates"][0].get("finishReason") for e in events] == [None, None, None, "STOP"]
    assert all(b"[DONE]" not in f for f in frames)


def test_google_array_stream_matches_sse() -> None:
    reply = make_reply()
    frames = google.build_stream({}, reply, sse=False)
    assert frames[0].startswith(b'[{\n  "candidates": ')
    assert all(f.startswith(b"\n,\r\n{\n") for f in frames[1:-1])
    assert frames[-1] == b"\n]"
    parsed = json.loads(b"".join(frames))
    sse = [json.loads(p) for p in sse_data(google.build_stream({}, reply, sse=True), b"\r\n\r\n")]
    assert parsed == sse == google.stream_events(reply)


def test_google_empty_reply_still_finishes() -> None:
    events = google.stream_events(make_reply(""))
    assert len(events) == 1 and events[0]["candidates"][0]["finishReason"] == "STOP"


def test_google_echo_and_prompt_tokens() -> None:
    request = {
        "systemInstruction": {"parts": [{"text": "abcd"}]},
        "contents": [
            {"role": "user", "parts": [{"text": "one"}]},
            {"role": "model", "parts": [{"text": "two"}]},
            {"role": "user", "parts": [{"text": "three "}, {"inlineData": {}}, {"text": "four"}]},
            {"role": "model", "parts": [{"text": "partial"}]},
        ],
    }
    assert google.extract_echo(request) == "three four"
    assert google.prompt_tokens(request) == 7  # 4 + 3 + 3 + 10 + 7 = 27 chars
    assert google.extract_echo({"contents": [{"parts": [{"text": "no role"}]}]}) == "no role"


@pytest.mark.parametrize(
    ("status", "name"),
    [
        (400, "INVALID_ARGUMENT"),
        (401, "UNAUTHENTICATED"),
        (403, "PERMISSION_DENIED"),
        (404, "NOT_FOUND"),
        (429, "RESOURCE_EXHAUSTED"),
        (500, "INTERNAL"),
        (503, "UNAVAILABLE"),
    ],
)
def test_google_error_body(status: int, name: str) -> None:
    error = json.loads(google.error_body(status))["error"]
    assert (error["code"], error["status"]) == (status, name)
    assert error["message"]


@given(st.text(min_size=1))
def test_every_format_reassembles_any_text(text: str) -> None:
    reply = make_reply(text)
    oa = [json.loads(p) for p in sse_data(openai.build_stream({}, reply))[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in oa) == text
    an = [json.loads(f.decode().split("data: ", 1)[1]) for f in anthropic.build_stream({}, reply)]
    assert "".join(e["delta"]["text"] for e in an if e["type"] == "content_block_delta") == text
    gg = json.loads(b"".join(google.build_stream({}, reply, sse=False)))
    assert "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in gg) == text
