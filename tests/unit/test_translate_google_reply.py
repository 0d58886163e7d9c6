"""Gemini / Vertex replies -> OpenAI replies: golden translations of the faithful provider
recordings (tests/golden/*.sse, *.json) and of the mock's builders (outputs in
tests/golden/translate/google_reply_*), OpenAI-SDK validation and accumulation (the real SDK
over an in-memory transport), failure modes, and chunking invariance (hypothesis).

Regenerate the golden outputs after a deliberate change with
``GOLDEN_UPDATE=1 pytest tests/unit/test_translate_google_reply.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from extproc.mock import google as mock
from extproc.mock.common import Reply
from extproc.translate import google_reply
from extproc.translate.base import ReplyContext
from extproc.translate.google import THOUGHT_SEP, reply_translator

GOLDEN = Path(__file__).parent.parent / "golden"
OUT = GOLDEN / "translate"
SSE, JSON = "text/event-stream", "application/json; charset=UTF-8"
STREAM = ReplyContext("gemini-front", stream=True, include_usage=True, created=1751900000)
STREAM_NO_USAGE = ReplyContext("gemini-front", stream=True, created=1751900000)
WHOLE = ReplyContext("gemini-front", stream=False, created=1751900000)
MOCK_REPLY = Reply.make("Tool calls, thoughts and text.", "gemini-2.5-flash", "mockResp01",
                        1751900000.5, 9)


def _mock_stream(shape: str | None, n: int, vertex: bool) -> bytes:
    request = {"generationConfig": {"candidateCount": n}}
    return b"".join(mock.build_stream(request, MOCK_REPLY, sse=True, vertex=vertex,
                                      shape=shape))


def _mock_whole(shape: str | None, n: int, vertex: bool) -> bytes:
    return mock.build_response({"generationConfig": {"candidateCount": n}}, MOCK_REPLY,
                               vertex=vertex, shape=shape)


def _golden(name: str) -> bytes:
    return (GOLDEN / name).read_bytes()


# name -> (status, content type, context, upstream body, the status the client gets)
CASES: dict[str, tuple[int, str, ReplyContext, bytes, int]] = {
    "text_stream": (200, SSE, STREAM, _golden("gemini_text_stream.sse"), 200),
    "text_stream_no_usage": (200, SSE, STREAM_NO_USAGE, _golden("gemini_text_stream.sse"), 200),
    "function_call_stream": (200, SSE, STREAM, _golden("gemini_function_call_stream.sse"), 200),
    "thought_stream": (200, SSE, STREAM, _golden("gemini_thought_stream.sse"), 200),
    "midstream_error": (200, SSE, STREAM, _golden("gemini_midstream_error.sse"), 200),
    "safety_finish_stream": (200, SSE, STREAM, _golden("gemini_safety_finish_stream.sse"), 200),
    "prompt_blocked_stream": (200, SSE, STREAM, _golden("gemini_prompt_blocked_stream.sse"),
                              200),
    "vertex_text_stream": (200, SSE, STREAM, _golden("vertex_text_stream.sse"), 200),
    "response": (200, JSON, WHOLE, _golden("gemini_response.json"), 200),
    "blocked_response": (200, JSON, WHOLE, _golden("gemini_blocked_response.json"), 200),
    "vertex_response": (200, JSON, WHOLE, _golden("vertex_response.json"), 200),
    "array_stream_refused": (200, JSON, STREAM, _golden("gemini_array_stream.json"), 200),
    "array_as_whole_refused": (200, JSON, WHOLE, _golden("gemini_array_stream.json"), 502),
    "sse_for_whole_refused": (200, SSE, WHOLE, _golden("gemini_text_stream.sse"), 502),
    "error_429": (429, JSON, STREAM, mock.error_body(429), 429),
    "error_400": (400, JSON, WHOLE, mock.error_body(400, "Invalid JSON payload"), 400),
    "error_401": (401, JSON, WHOLE, mock.error_body(401), 401),
    "error_403": (403, JSON, WHOLE, mock.error_body(403), 403),
    "error_404": (404, JSON, WHOLE, mock.error_body(404), 404),
    "error_500": (500, JSON, WHOLE, mock.error_body(500), 500),
    "error_503_array": (503, JSON, STREAM, b"[" + mock.error_body(503) + b"]", 503),
    "error_unreadable": (502, "text/html", WHOLE, b"<html>Bad Gateway</html>", 502),
    **{f"mock_{shape or 'text'}_{'vertex' if vertex else 'gemini'}_n{n}_stream":
       (200, SSE, STREAM, _mock_stream(shape, n, vertex), 200)
       for shape in (None, "thinking", "tool") for n in (1, 2) for vertex in (False, True)},
    **{f"mock_{shape or 'text'}_{'vertex' if vertex else 'gemini'}_n{n}":
       (200, JSON, WHOLE, _mock_whole(shape, n, vertex), 200)
       for shape in (None, "thinking", "tool") for n in (1, 2) for vertex in (False, True)},
}


def run(status: int, content_type: str, ctx: ReplyContext, body: bytes,
        cuts: list[int] | None = None) -> tuple[bytes, Any]:
    """The translated body fed in pieces cut at `cuts` (default: whole), and the
    translator."""
    translator = reply_translator(status, content_type, ctx)
    points = sorted({c for c in (cuts or []) if 0 < c < len(body)})
    out = b""
    for a, b in zip([0, *points], [*points, len(body)], strict=True):
        out += translator.feed(body[a:b])
    out += translator.finish()
    return out, translator


def events(out: bytes) -> list[str]:
    assert out.endswith(b"\n\n")
    data = out.decode().split("\n\n")[:-1]
    assert all(d.startswith("data: ") and "\n" not in d for d in data)
    return [d[6:] for d in data]


def check_openai_shape(out: bytes, translator: Any) -> None:
    """Every chunk / completion validates as the OpenAI SDK's type; errors are OpenAI's."""
    if translator.content_type == SSE:
        datas = events(out)
        for i, data in enumerate(datas):
            if data == "[DONE]":
                assert i == len(datas) - 1
                continue
            doc = json.loads(data)
            if "error" in doc:
                assert i == len(datas) - 1, "an error event ends the stream"
                assert set(doc["error"]) == {"message", "type", "param", "code"}
                continue
            ChatCompletionChunk.model_validate(doc)
            assert doc["usage"] is None or (doc["choices"] == [] and i == len(datas) - 2)
    else:
        doc = json.loads(out)
        if "error" in doc:
            assert set(doc["error"]) == {"message", "type", "param", "code"}
            assert translator.status != 200
        else:
            ChatCompletion.model_validate(doc)
            assert translator.status == 200


@pytest.mark.parametrize("name", list(CASES))
def test_golden_replies(name: str) -> None:
    status, content_type, ctx, body, client_status = CASES[name]
    out, translator = run(status, content_type, ctx, body)
    assert translator.status == client_status
    check_openai_shape(out, translator)
    path = OUT / f"google_reply_{name}.{'sse' if translator.content_type == SSE else 'json'}"
    if os.environ.get("GOLDEN_UPDATE"):
        path.write_bytes(out)
    assert out == path.read_bytes()


def test_every_golden_output_has_a_case() -> None:
    names = {p.name for p in OUT.glob("google_reply_*")}
    assert names == {f"google_reply_{n}.{e}" for n in CASES for e in ("sse", "json")
                     if (OUT / f"google_reply_{n}.{e}").exists()}
    assert len(names) == len(CASES)


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(CASES)), cuts=st.lists(st.integers(0, 1 << 16),
                                                         max_size=12))
def test_any_chunking_gives_the_same_bytes(name: str, cuts: list[int]) -> None:
    status, content_type, ctx, body, _ = CASES[name]
    whole, _t = run(status, content_type, ctx, body)
    scaled = [c % (len(body) + 1) for c in cuts]
    assert run(status, content_type, ctx, body, scaled)[0] == whole


@pytest.mark.parametrize("name", [n for n in CASES if CASES[n][2].stream])
def test_byte_by_byte(name: str) -> None:
    status, content_type, ctx, body, _ = CASES[name]
    assert run(status, content_type, ctx, body, list(range(len(body))))[0] == \
        run(status, content_type, ctx, body)[0]


# ---- what the translation means, checked through the OpenAI SDK ----------------------------

def sdk(out: bytes, content_type: str, status: int = 200, **kw: Any) -> Any:
    """The official OpenAI client reading `out` as the gateway's reply."""
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, headers={"content-type": content_type}, content=out)

    client = openai.OpenAI(api_key="k", base_url="http://gateway/v1", max_retries=0,
                           http_client=httpx2.Client(transport=httpx2.MockTransport(handler)))
    args = {"model": "gemini-front", "messages": [{"role": "user", "content": "x"}], **kw}
    if kw.get("stream"):
        with client.chat.completions.stream(**{k: v for k, v in args.items()
                                               if k != "stream"}) as stream:
            return stream.get_final_completion()
    return client.chat.completions.create(**args)


def test_sdk_reads_the_text_stream() -> None:
    out, _ = run(*CASES["text_stream"][:4])
    final = sdk(out, SSE, stream=True, stream_options={"include_usage": True})
    assert final.choices[0].message.content == (
        "The sky appears blue because sunlight scatters off the molecules in the air; "
        "short blue wavelengths scatter the most.\n")
    assert final.choices[0].finish_reason == "stop"
    assert final.usage.prompt_tokens == 8 and final.usage.completion_tokens == 22
    assert final.usage.total_tokens == 30


def test_sdk_reads_the_tool_call_stream() -> None:
    out, _ = run(*CASES["function_call_stream"][:4])
    final = sdk(out, SSE, stream=True)
    call = final.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"location": "Boston, MA",
                                                   "unit": "fahrenheit"}
    assert call.id == ("call_8nVrZ6TqJ8G1nvgP2c-ByQM_0_0" + THOUGHT_SEP
                       + "CiQB0e2Kb7cN1x2XJ9qW4vLpR8sTz3mYk6HnA0fGd5eUo+I=")
    assert final.choices[0].finish_reason == "tool_calls"
    assert final.usage.completion_tokens == 15 + 44
    assert final.usage.completion_tokens_details.reasoning_tokens == 44


def test_sdk_reads_two_candidates() -> None:
    out, _ = run(*CASES["mock_text_gemini_n2_stream"][:4])
    final = sdk(out, SSE, stream=True)
    assert [c.message.content for c in final.choices] == [MOCK_REPLY.text] * 2
    assert [c.finish_reason for c in final.choices] == ["stop", "stop"]


def test_sdk_raises_the_midstream_error() -> None:
    out, _ = run(*CASES["midstream_error"][:4])
    with pytest.raises(openai.APIError, match="overloaded"):
        sdk(out, SSE, stream=True)


@pytest.mark.parametrize(("name", "error"), [
    ("error_429", openai.RateLimitError), ("error_400", openai.BadRequestError),
    ("error_401", openai.AuthenticationError), ("error_403", openai.PermissionDeniedError),
    ("error_404", openai.NotFoundError), ("error_500", openai.InternalServerError),
    ("array_as_whole_refused", openai.InternalServerError)])
def test_sdk_raises_the_error(name: str, error: type[Exception]) -> None:
    out, translator = run(*CASES[name][:4])
    with pytest.raises(error):
        sdk(out, translator.content_type, translator.status)


def test_sdk_reads_the_whole_reply() -> None:
    out, _ = run(*CASES["mock_tool_vertex_n1"][:4])
    done = sdk(out, JSON)
    call = done.choices[0].message.tool_calls[0]
    assert (call.id, call.function.name) == ("call_mockResp01_0_0", mock.TOOL_NAME)
    assert json.loads(call.function.arguments) == {"text": MOCK_REPLY.text}
    assert done.choices[0].finish_reason == "tool_calls"


def test_whole_reply_fields() -> None:
    doc = json.loads(run(*CASES["response"][:4])[0])
    message = doc["choices"][0]["message"]
    assert message["content"] == "Hello! How can I help you today?"
    assert message["reasoning_content"].startswith("**Thinking about greetings**")
    assert doc["usage"] == {"prompt_tokens": 4, "completion_tokens": 47, "total_tokens": 51,
                            "prompt_tokens_details": {"cached_tokens": 0},
                            "completion_tokens_details": {"reasoning_tokens": 38}}
    vertex = json.loads(run(*CASES["vertex_response"][:4])[0])
    assert vertex["choices"][0]["finish_reason"] == "length"
    assert vertex["usage"]["prompt_tokens_details"]["cached_tokens"] == 1024
    blocked = json.loads(run(*CASES["blocked_response"][:4])[0])
    assert blocked["choices"] == [{"index": 0, "message": {
        "role": "assistant", "content": None, "refusal": None}, "logprobs": None,
        "finish_reason": "content_filter"}]


@pytest.mark.parametrize(("name", "kind", "code"), [
    ("error_429", "rate_limit_error", "RESOURCE_EXHAUSTED"),
    ("error_400", "invalid_request_error", "INVALID_ARGUMENT"),
    ("error_401", "authentication_error", "UNAUTHENTICATED"),
    ("error_403", "permission_error", "PERMISSION_DENIED"),
    ("error_404", "not_found_error", "NOT_FOUND"),
    ("error_500", "server_error", "INTERNAL"),
    ("error_503_array", "server_error", "UNAVAILABLE"),
    ("error_unreadable", "server_error", None)])
def test_error_types(name: str, kind: str, code: str | None) -> None:
    out, translator = run(*CASES[name][:4])
    assert translator.content_type == "application/json"
    error = json.loads(out)["error"]
    assert (error["type"], error["code"]) == (kind, code)
    assert "<html>" not in error["message"], "an unreadable body is never passed on"


def test_usage_adds_tool_prompt_tokens() -> None:
    assert google_reply.usage({"promptTokenCount": 10, "toolUsePromptTokenCount": 5,
                               "candidatesTokenCount": 3, "thoughtsTokenCount": 2,
                               "cachedContentTokenCount": 4, "totalTokenCount": 20}) == {
        "prompt_tokens": 15, "completion_tokens": 5, "total_tokens": 20,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 2}}


# ---- incremental release and failures ---------------------------------------------------------

def _sse(*docs: Any) -> bytes:
    return b"".join(b"data: " + json.dumps(d).encode() + b"\r\n\r\n" for d in docs)


def _cand(parts: list[dict[str, Any]] | None = None, finish: str | None = None,
          index: int = 0) -> dict[str, Any]:
    cand: dict[str, Any] = {"index": index}
    if parts is not None:
        cand["content"] = {"role": "model", "parts": parts}
    if finish:
        cand["finishReason"] = finish
    return {"candidates": [cand], "responseId": "r1"}


def last_event(out: bytes) -> dict[str, Any]:
    return json.loads(events(out)[-1])


def test_text_is_released_when_its_event_completes() -> None:
    body = _golden("gemini_text_stream.sse")
    first = body.index(b"\r\n\r\n") + 4
    translator = reply_translator(200, SSE, STREAM)
    assert translator.feed(body[:first - 1]) == b""
    assert translator.held_bytes == first - 1
    out = translator.feed(body[first - 1:first])
    assert b'"content":"The sky appears blue"' in out
    assert translator.held_bytes == 0


@pytest.mark.parametrize(("body", "message"), [
    (_sse(_cand([{"text": "Hi"}])), "ended before a finishReason"),
    (_sse(_cand([{"text": "Hi"}], "STOP"))[:-4], "ends inside an event"),
    (_sse(_cand([{"text": "Hi"}], "STOP"), _cand([{"text": "more"}])), "after the candidate"),
    (_sse(_cand([{"inlineData": {"mimeType": "image/png", "data": "AA=="}}], "STOP")),
     "inlineData part"),
    (_sse(_cand([{"executableCode": {"code": "1"}}], "STOP")), "executableCode part"),
    (_sse(_cand([{"functionCall": {"name": "f", "partialArgs": []}}], "STOP")), "functionCall"),
    (_sse(_cand([{"text": "Hi"}], "MALFORMED_FUNCTION_CALL")), "MALFORMED_FUNCTION_CALL"),
    (_sse(_cand([], "OTHER")), "OTHER"),
    (b"data: not json\r\n\r\n", "not JSON"),
    (b"data: [1, 2]\r\n\r\n", "not a JSON object"),
    (_sse({"candidates": {"index": 0}}), "candidates is not a list"),
    (_sse({"usageMetadata": {}}), "ended before a finishReason"),
    (b"", "ended before a finishReason"),
])
def test_stream_failures_end_with_an_error_event(body: bytes, message: str) -> None:
    out, translator = run(200, SSE, STREAM, body)
    check_openai_shape(out, translator)
    assert b"[DONE]" not in out
    error = last_event(out)["error"]
    assert message in error["message"] and error["type"] == "server_error"
    assert translator.feed(_sse(_cand([{"text": "late"}], "STOP"))) == b""
    assert translator.finish() == b""


def test_a_finished_candidate_may_repeat_without_content() -> None:
    usage = {"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5}
    body = _sse(_cand([{"text": "Hi"}], "STOP"),
                {**_cand([{"text": ""}], "STOP"), "usageMetadata": usage})
    out, translator = run(200, SSE, STREAM, body)
    check_openai_shape(out, translator)
    datas = events(out)
    assert datas[-1] == "[DONE]"
    assert [json.loads(d)["choices"][0]["finish_reason"] for d in datas[:-2]] == [
        None, None, "stop"]
    assert json.loads(datas[-2])["usage"]["total_tokens"] == 5


@pytest.mark.parametrize(("doc", "code", "message"), [
    (_cand([], "MALFORMED_FUNCTION_CALL"), "malformed_function_call", "MALFORMED_FUNCTION_CALL"),
    (_cand([{"text": "x"}]), "bad_upstream_reply", "without a finishReason"),
    ({"responseId": "r"}, "bad_upstream_reply", "no candidates"),
    ({"candidates": [{"content": {"parts": [{"inlineData": {}}]}, "finishReason": "STOP"}]},
     "bad_upstream_reply", "inlineData part"),
    ({"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}},
     "RESOURCE_EXHAUSTED", "quota")])
def test_unusable_whole_replies_are_errors(doc: Any, code: str, message: str) -> None:
    out, translator = run(200, JSON, WHOLE, json.dumps(doc).encode())
    assert translator.status == (429 if code == "RESOURCE_EXHAUSTED" else 502)
    error = json.loads(out)["error"]
    assert error["code"] == code and message in error["message"]


@pytest.mark.parametrize(("reason", "finish"), [
    ("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"),
    ("RECITATION", "content_filter"), ("BLOCKLIST", "content_filter"),
    ("PROHIBITED_CONTENT", "content_filter"), ("SPII", "content_filter"),
    ("IMAGE_SAFETY", "content_filter")])
def test_finish_reasons(reason: str, finish: str) -> None:
    out, _ = run(200, SSE, STREAM, _sse(_cand([{"text": "x"}], reason)))
    # (no usageMetadata: no usage chunk, so the finish chunk is right before [DONE])
    assert json.loads(events(out)[-2])["choices"][0]["finish_reason"] == finish
    whole = json.loads(run(200, JSON, WHOLE, json.dumps(_cand([{"text": "x"}], reason))
                           .encode())[0])
    assert whole["choices"][0]["finish_reason"] == finish


def test_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(google_reply, "MAX_BODY", 64)
    big = _sse(_cand([{"text": "x" * 100}], "STOP"))
    out, _ = run(200, SSE, STREAM, big)   # within the default bound
    assert b"exceeds" not in out and out.endswith(b"data: [DONE]\n\n")
    # the route's streams.max_event_bytes bounds an event held to translate
    out, translator = run(200, SSE, ReplyContext("m", stream=True, max_event_bytes=64), big)
    assert "exceeds max_event_bytes=64" in last_event(out)["error"]["message"]
    assert translator.held_bytes == 0
    # the whole events before the one too large, in the same chunk, still go out
    small = _sse(_cand([{"text": "kept"}]))
    ctx = ReplyContext("m", stream=True, max_event_bytes=len(small) + 8)
    out, _ = run(200, SSE, ctx, small + big)
    assert "".join(json.loads(e)["choices"][0]["delta"].get("content") or ""
                   for e in events(out)[:-1]) == "kept"
    assert "exceeds max_event_bytes" in last_event(out)["error"]["message"]
    out, translator = run(200, JSON, WHOLE, big)
    assert translator.status == 502 and "exceeds" in json.loads(out)["error"]["message"]
    assert translator.held_bytes == 0


def test_context_id_and_no_response_id() -> None:
    ctx = ReplyContext("m", stream=True, id="chatcmpl-mine")
    out, _ = run(200, SSE, ctx, _sse({"candidates": [{"content": {"parts": [
        {"functionCall": {"name": "f", "args": {}, "id": "gem-id-1"}}]},
        "finishReason": "STOP"}]}))
    chunks = [json.loads(e) for e in events(out)[:-1]]
    assert {c["id"] for c in chunks} == {"chatcmpl-mine"}
    assert chunks[1]["choices"][0]["delta"]["tool_calls"][0]["id"] == "gem-id-1"
    out, _ = run(200, SSE, STREAM_NO_USAGE, _sse({"candidates": [{"content": {"parts": [
        {"functionCall": {"name": "f"}}]}, "finishReason": "STOP"}]}))
    chunks = [json.loads(e) for e in events(out)[:-1]]
    assert chunks[0]["id"] == "chatcmpl-gemini"
    assert chunks[1]["choices"][0]["delta"]["tool_calls"][0]["id"] == "call_0_0"
    assert chunks[2]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] == "{}"


DEEP = "[" * 100000 + "]" * 100000


def test_a_lone_surrogate_stays_escaped_whole_and_streamed() -> None:
    """A backend's `\\ud83d` escape (half a pair) is text Python holds but UTF-8 cannot
    encode: it goes on escaped, never as a crash (a 500 and a traceback)."""
    doc = _cand([{"text": "hi \ud83d"}], "STOP")
    out, _ = run(200, SSE, STREAM, _sse(doc))
    out.decode()
    assert b"\\ud83d" in out and out.endswith(b"data: [DONE]\n\n")
    whole, translator = run(200, JSON, WHOLE, json.dumps(doc).encode())
    assert translator.status == 200
    assert json.loads(whole)["choices"][0]["message"]["content"] == "hi \ud83d"


def test_json_deeper_than_python_reads_is_an_unreadable_reply() -> None:
    args = '{"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"f",' \
        '"args":{"a":' + DEEP + '}}}]},"finishReason":"STOP","index":0}]}'
    out, _ = run(200, SSE, STREAM, b"data: " + args.encode() + b"\r\n\r\n")
    assert "not JSON" in last_event(out)["error"]["message"]
    whole, translator = run(200, JSON, WHOLE, args.encode())
    assert translator.status == 502 and "error" in json.loads(whole)
