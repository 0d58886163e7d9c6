"""Pure-function tests of the mock LLM wire formats, control headers and helpers."""

from __future__ import annotations

import base64
import json
import struct

import anthropic.types as anthropic_types
import openai.types as openai_types
import pydantic
import pytest
from google.genai import types as genai_types
from hypothesis import given
from hypothesis import strategies as st
from openai.types.responses import Response, ResponseStreamEvent

from extproc.mock import (
    anthropic,
    anthropic_tokens,
    google,
    google_extra,
    openai,
    openai_completions,
    openai_embeddings,
    openai_responses,
)
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
    assert parse_control({"x-mock-status": "200"}).success_status is None
    assert parse_control({"x-mock-status": "201"}) == Control(success_status=201)
    assert parse_control({"x-mock-usage": " Omit"}) == Control(omit_usage=True)
    assert parse_control({"x-mock-wait-ms": "250"}) == Control(wait_ms=250)


@pytest.mark.parametrize(
    "headers",
    [
        {"x-mock-chunk-bytes": "0"},
        {"x-mock-chunk-bytes": "abc"},
        {"x-mock-delay-ms": "-1"},
        {"x-mock-status": "700"},
        {"x-mock-fail-after": "-5"},
        {"x-mock-usage": "none"},
        {"x-mock-wait-ms": "-1"},
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


# --- the other endpoints, validated against the official SDKs' own types -----------------

STREAM_EVENT = pydantic.TypeAdapter(ResponseStreamEvent)


def named_events(frames: list[bytes]) -> list[dict]:
    """The data of `event: <type>` frames, checking the name matches the JSON's type."""
    out = []
    for frame in frames:
        assert frame.endswith(b"\n\n") and frame.count(b"\n\n") == 1
        name, data = frame.decode()[:-2].split("\n")
        doc = json.loads(data.removeprefix("data: "))
        assert name == f"event: {doc['type']}"
        out.append(doc)
    return out


def test_responses_body_validates_against_the_sdk_type() -> None:
    request = {"model": "gpt-5", "input": "hi", "instructions": "Be brief.",
               "max_output_tokens": 50}
    body = Response.model_validate_json(openai_responses.build_response(request, make_reply()))
    assert body.output_text == TEXT and body.status == "completed"
    assert body.id == "resp_abc123" and body.model == "m-1" and body.created_at == 1700000000
    assert body.instructions == "Be brief." and body.max_output_tokens == 50
    assert body.usage is not None
    assert (body.usage.input_tokens, body.usage.output_tokens, body.usage.total_tokens) == (
        5, 4, 9)
    assert body.usage.input_tokens_details.cached_tokens == 0


@pytest.mark.parametrize("obfuscation", [None, True, False])
def test_responses_stream_validates_against_the_sdk_types(obfuscation: bool | None) -> None:
    request: dict = {"model": "gpt-5", "input": "hi", "stream": True}
    if obfuscation is not None:
        request["stream_options"] = {"include_obfuscation": obfuscation}
    events = named_events(openai_responses.build_stream(request, make_reply()))
    for event in events:
        STREAM_EVENT.validate_python(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    types = [e["type"] for e in events]
    assert types == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.content_part.added", *["response.output_text.delta"] * 4,
                     "response.output_text.done", "response.content_part.done",
                     "response.output_item.done", "response.completed"]
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    assert [d["delta"] for d in deltas] == PIECES
    assert all(("obfuscation" in d) is (obfuscation is not False) for d in deltas)
    assert events[0]["response"]["usage"] is None and events[0]["response"]["output"] == []
    final = events[-1]["response"]
    assert final["status"] == "completed" and final["usage"]["total_tokens"] == 9
    assert final["output"][0]["content"][0]["text"] == TEXT
    assert events[-4]["text"] == events[-3]["part"]["text"] == TEXT
    assert b"[DONE]" not in b"".join(openai_responses.build_stream(request, make_reply()))


def test_responses_echo_and_prompt_tokens() -> None:
    assert openai_responses.extract_echo({"input": "plain"}) == "plain"
    request = {"instructions": "abcd", "input": [
        {"role": "user", "content": "first"},
        {"type": "message", "role": "assistant",
         "content": [{"type": "output_text", "text": "ok"}]},
        {"role": "user", "content": [{"type": "input_text", "text": "second"},
                                     {"type": "input_image", "image_url": "x"}]}]}
    assert openai_responses.extract_echo(request) == "second"
    assert openai_responses.prompt_tokens(request) == 5   # 4 + 5 + 2 + 6 = 17 chars
    with pytest.raises(RequestError):
        openai_responses.validate({"input": "no model"})
    with pytest.raises(RequestError):
        openai_responses.validate({"model": "m", "input": 7})


@pytest.mark.parametrize("include_usage", [True, False])
def test_completions_validate_against_the_sdk_type(include_usage: bool) -> None:
    body = openai_types.Completion.model_validate_json(
        openai_completions.build_response({}, make_reply()))
    assert body.choices[0].text == TEXT and body.choices[0].finish_reason == "stop"
    assert body.usage is not None and body.usage.total_tokens == 9
    request = {"stream": True, "stream_options": {"include_usage": include_usage}}
    frames = openai_completions.build_stream(request, make_reply())
    payloads = sse_data(frames)
    assert payloads[-1] == "[DONE]"
    docs = [json.loads(p) for p in payloads[:-1]]
    finishes = [d["choices"][0]["finish_reason"] for d in docs if d["choices"]]
    assert finishes == [None] * 4 + ["stop"]
    for d in docs:   # the SDK types the whole object, whose finish_reason is never null
        for choice in d["choices"]:
            choice["finish_reason"] = choice["finish_reason"] or "stop"
    chunks = [openai_types.Completion.model_validate(d) for d in docs]
    assert "".join(c.choices[0].text for c in chunks if c.choices) == TEXT
    if include_usage:
        assert chunks[-1].choices == [] and chunks[-1].usage is not None
        assert all(json.loads(p)["usage"] is None for p in payloads[:-2])
    else:
        assert all("usage" not in json.loads(p) for p in payloads[:-1])


def test_completions_prompt_forms() -> None:
    assert openai_completions.extract_echo({"prompt": ["a", "b"]}) == "b"
    assert openai_completions.extract_echo({"prompt": [1, 2]}) == ""
    assert openai_completions.prompt_tokens({"prompt": [[1, 2, 3], [4]]}) == 4
    with pytest.raises(RequestError):
        openai_completions.validate({"model": "m"})


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_embeddings_validate_against_the_sdk_type(encoding: str) -> None:
    request = {"model": "e", "input": ["one", "two", "three"], "encoding_format": encoding,
               "dimensions": 5}
    raw = json.loads(openai_embeddings.build_response(request, "e"))
    if encoding == "base64":
        for item in raw["data"]:
            packed = base64.b64decode(item["embedding"])
            item["embedding"] = list(struct.unpack(f"<{len(packed) // 4}f", packed))
    body = openai_types.CreateEmbeddingResponse.model_validate(raw)
    assert [d.index for d in body.data] == [0, 1, 2]
    assert all(len(d.embedding) == 5 for d in body.data)
    assert body.data[0].embedding == openai_embeddings.vector_for('"one"', 5)
    assert abs(sum(v * v for v in body.data[1].embedding) - 1) < 1e-5
    assert body.usage.prompt_tokens == body.usage.total_tokens == 3
    tokens = json.loads(openai_embeddings.build_response({"input": [1, 2, 3]}, "e"))
    assert len(tokens["data"]) == 1 and tokens["usage"]["prompt_tokens"] == 3
    for bad in ({}, {"input": ""}, {"input": []}, {"input": "x", "dimensions": 0}):
        with pytest.raises(RequestError):
            openai_embeddings.validate(bad)


def test_anthropic_count_tokens_validates_against_the_sdk_type() -> None:
    request = {"model": "c", "system": "abcd",
               "messages": [{"role": "user", "content": "efghijkl"}]}
    count = anthropic_types.MessageTokensCount.model_validate_json(
        anthropic_tokens.build_response(request))
    assert count.input_tokens == 3
    with pytest.raises(RequestError):
        anthropic_tokens.validate({"model": "c"})


def test_google_extra_paths() -> None:
    route = google_extra.parse_path("/v1beta/models/gemini-2.5-flash:countTokens")
    assert route == google_extra.Route("gemini-2.5-flash", "countTokens", False)
    vertex = google_extra.parse_path(
        "/v1/projects/p/locations/l/publishers/google/models/g:embedContent")
    assert vertex == google_extra.Route("g", "embedContent", True)
    assert google_extra.parse_path("/v1beta/models/e:batchEmbedContents") is not None
    assert google_extra.parse_path("/v1beta/models/g:generateContent") is None
    assert google.parse_path("/v1beta/models/g:countTokens") is None


def test_google_extra_bodies_validate_against_the_sdk_types() -> None:
    count = google_extra.Route("g", "countTokens", False)
    request = {"contents": [{"role": "user", "parts": [{"text": "abcdefgh"}]}],
               "generateContentRequest": {"contents": [{"parts": [{"text": "abcd"}]}]}}
    body = json.loads(count.build(request))
    # google-genai keeps totalTokens (and cachedContentTokenCount) of the wire reply
    assert genai_types.CountTokensResponse.model_validate(
        {"totalTokens": body["totalTokens"]}).total_tokens == 3
    for detail in body["promptTokensDetails"]:
        assert genai_types.ModalityTokenCount.model_validate(detail).token_count == 3
    assert set(body) == {"totalTokens", "promptTokensDetails"}
    vertex = json.loads(google_extra.Route("g", "countTokens", True).build(request))
    assert vertex["totalBillableCharacters"] == 8
    embed = google_extra.Route("e", "embedContent", False)
    single = json.loads(embed.build({"content": {"parts": [{"text": "x"}]},
                                     "outputDimensionality": 3}))
    assert set(single) == {"embedding"}
    assert len(genai_types.ContentEmbedding.model_validate(single["embedding"]).values) == 3
    vsingle = json.loads(google_extra.Route("e", "embedContent", True).build(
        {"content": {"parts": [{"text": "abcd"}]}}))
    assert vsingle["usageMetadata"] == {"promptTokenCount": 1} and vsingle["truncated"] is False
    batch = google_extra.Route("e", "batchEmbedContents", False)
    many = json.loads(batch.build({"requests": [
        {"model": "models/e", "content": {"parts": [{"text": "a"}]}},
        {"model": "models/e", "content": {"parts": [{"text": "b"}]}}]}))
    parsed = genai_types.EmbedContentResponse.model_validate(many)
    assert parsed.embeddings is not None and len(parsed.embeddings) == 2
    assert parsed.embeddings[0].values != parsed.embeddings[1].values
    for route, bad in ((embed, {}), (batch, {"requests": []}), (batch, {"requests": [{}]})):
        with pytest.raises(RequestError):
            route.validate(bad)


@given(st.text(min_size=1))
def test_responses_and_completions_reassemble_any_text(text: str) -> None:
    reply = make_reply(text)
    events = named_events(openai_responses.build_stream({"stream": True}, reply))
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert deltas == text == events[-1]["response"]["output"][0]["content"][0]["text"]
    chunks = [json.loads(p) for p in sse_data(openai_completions.build_stream({}, reply))[:-1]]
    assert "".join(c["choices"][0]["text"] for c in chunks) == text
