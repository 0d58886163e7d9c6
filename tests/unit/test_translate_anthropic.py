"""The Anthropic translator: OpenAI Chat Completions requests as Anthropic Messages requests
(goldens in tests/golden/translate/anthropic_requests.json, and every refusal by the field it
names, raised or, in drop mode, listed), and Anthropic replies as OpenAI replies (goldens
tests/golden/translate/anthropic_*.out.*, from the faithful recordings in tests/golden and
the mock's builders), each chunk and completion validated by the official openai types and
whole streams read by the OpenAI SDK itself; any chunking gives the same bytes.

Set UPDATE_GOLDEN=1 to rewrite the expected outputs (then review the diff).
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

from extproc.mock import anthropic as mock
from extproc.mock.common import Reply
from extproc.translate import anthropic_reply
from extproc.translate.anthropic import (
    JSON_TOOL,
    AnthropicTranslated,
    reply_translator,
    translate_request,
)
from extproc.translate.base import Backend, ReplyContext, Unsupported

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
OUT = GOLDEN / "translate"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
BACKEND = Backend("anthropic", "claude-sonnet-4-5-20250929")
CTX = ReplyContext(model="claude-front", stream=True, include_usage=True, created=1700000000)


def golden(name: str, actual: bytes) -> None:
    path = OUT / name
    if UPDATE:
        path.write_bytes(actual)
    assert actual == path.read_bytes(), name


# -- requests ----------------------------------------------------------------------------------

REQUESTS = OUT / "anthropic_requests.json"


def _translate(case: dict[str, Any]) -> AnthropicTranslated:
    return translate_request(case["request"], BACKEND,
                             drop_unsupported=case.get("drop_unsupported", False))


def test_request_goldens() -> None:
    doc = json.loads(REQUESTS.read_text())
    for case in doc["cases"]:
        t = _translate(case)
        got = {"body": json.loads(t.body), "path": t.path, "headers": t.headers,
               "dropped": list(t.dropped), "stream": t.stream, "json_tool": t.json_tool}
        if UPDATE:
            case["expected"] = got
        assert got == case["expected"], case["name"]
    if UPDATE:
        REQUESTS.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")


def test_request_body_is_compact_utf8_and_model_is_the_backends() -> None:
    t = translate_request({"model": "front", "messages": [{"role": "user", "content": "héllo"}]},
                          BACKEND)
    assert t.body == ('{"model":"claude-sonnet-4-5-20250929","max_tokens":4096,"messages":'
                      '[{"role":"user","content":[{"type":"text","text":"héllo"}]}]}').encode()
    assert (t.path, t.headers, t.dropped, t.stream, t.json_tool) == \
        ("/v1/messages", {}, (), False, None)


U = {"role": "user", "content": "Hi"}
A_CALL = {"role": "assistant", "tool_calls": [
    {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}
TOOLS = [{"type": "function", "function": {"name": "f"}}]


def _req(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [U], **fields}


def _msgs(*messages: Any, **fields: Any) -> dict[str, Any]:
    return {"model": "m", "messages": list(messages), **fields}


# (request, the field the 400 names): each is dropped and listed in drop mode.
UNSUPPORTED = [
    (_req(foo=1), "foo"),
    (_req(n=2), "n"),
    (_req(n=True), "n"),
    (_req(logprobs=True), "logprobs"),
    (_req(top_logprobs=3), "top_logprobs"),
    (_req(presence_penalty=0.5), "presence_penalty"),
    (_req(frequency_penalty=-1), "frequency_penalty"),
    (_req(logit_bias={"50256": -100}), "logit_bias"),
    (_req(seed=42), "seed"),
    (_req(audio={"voice": "alloy", "format": "mp3"}), "audio"),
    (_req(modalities=["text", "audio"]), "modalities"),
    (_req(prediction={"type": "content", "content": "x"}), "prediction"),
    (_req(web_search_options={}), "web_search_options"),
    (_req(store=True), "store"),
    (_req(metadata={"k": "v"}), "metadata"),
    (_req(moderation={"model": "omni-moderation-latest"}), "moderation"),
    (_req(prompt_cache_key="k"), "prompt_cache_key"),
    (_req(prompt_cache_options={"mode": "explicit"}), "prompt_cache_options"),
    (_req(prompt_cache_retention="24h"), "prompt_cache_retention"),
    (_req(verbosity="low"), "verbosity"),
    (_req(temperature=1.5), "temperature"),
    (_req(service_tier="flex"), "service_tier"),
    (_req(user="a", safety_identifier="b"), "user"),
    (_req(stream=True, stream_options={"include_obfuscation": True}),
     "stream_options.include_obfuscation"),
    (_req(stream=True, stream_options={"chunk": 1}), "stream_options.chunk"),
    (_msgs({"role": "user", "name": "bob", "content": "Hi"}), "messages[0].name"),
    (_msgs({"role": "system", "name": "sys", "content": "Hi"}, U), "messages[0].name"),
    (_msgs({"role": "user", "content": "Hi", "foo": 1}), "messages[0].foo"),
    (_msgs({"role": "user", "content": [{"type": "image_url", "image_url": {
        "url": "https://x/a.png", "detail": "high"}}]}), "messages[0].content[0].image_url.detail"),
    (_msgs({"role": "user", "content": [{"type": "text", "text": "a", "prompt_cache_breakpoint": {
        "mode": "explicit"}}]}), "messages[0].content[0].prompt_cache_breakpoint"),
    (_msgs(U, {"role": "assistant", "content": "a", "reasoning_content": "hmm"}),
     "messages[1].reasoning_content"),
    (_req(tools=[{"type": "custom", "custom": {"name": "grep"}}]), "tools[0]"),
    (_req(tools=[{"type": "function", "function": {"name": "f", "x": 1}}]),
     "tools[0].function.x"),
    (_req(tools=TOOLS, tool_choice={"type": "allowed_tools", "allowed_tools": {
        "mode": "auto", "tools": []}}), "tool_choice"),
    (_req(response_format={"type": "json_schema", "json_schema": {
        "name": "a", "description": "d", "schema": {"type": "object"}}}),
     "response_format.json_schema.description"),
    (_req(response_format={"type": "json_object"}, tools=TOOLS), "response_format"),
    (_req(response_format={"type": "json_object"}, reasoning_effort="low"), "response_format"),
    (_req(reasoning_effort="low", temperature=0.5), "temperature"),
    (_req(reasoning_effort="low", top_p=0.5), "top_p"),
    (_req(reasoning_effort="low", tools=TOOLS, tool_choice="required"), "tool_choice"),
    (_req(reasoning_effort="low", max_completion_tokens=1000), "reasoning_effort"),
    (_msgs(U, A_CALL, {"role": "tool", "tool_call_id": "t1", "content": "ok"},
           reasoning_effort="high", tools=TOOLS), "reasoning_effort"),
]


# Conversation content (a part, a message, a tool call of the history) and the legacy
# functions/function_call: refused in either mode, as docs/unified-front.md says and the Gemini
# backend does (found by review: drop mode left them out, the model answering a conversation
# the client never sent)
CONTENT = [
    (_req(functions=[{"name": "f"}]), "functions"),
    (_req(function_call="auto"), "function_call"),
    (_msgs(U, {"role": "function", "name": "f", "content": "x"}), "messages[1]"),
    (_msgs({"role": "user", "content": [{"type": "text", "text": "a"}, {
        "type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}]}),
     "messages[0].content[1]"),
    (_msgs({"role": "user", "content": [{"type": "video", "video": {}}]}),
     "messages[0].content[0]"),
    (_msgs({"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}),
     "messages[0].content[0].file.file_id"),
    (_msgs({"role": "user", "content": [{"type": "file", "file": {
        "file_data": "data:text/plain;base64,aGk=", "filename": "a.txt"}}]}),
     "messages[0].content[0].file.file_data"),
    (_msgs({"role": "user", "content": [{"type": "image_url", "image_url": {
        "url": "ftp://x/a.png"}}]}), "messages[0].content[0].image_url.url"),
    (_msgs({"role": "user", "content": [{"type": "image_url", "image_url": {
        "url": "data:image/svg+xml;base64,PHN2Zz4="}}]}), "messages[0].content[0].image_url.url"),
    (_msgs({"role": "system", "content": [{"type": "image_url", "image_url": {
        "url": "https://x/a.png"}}]}, U), "messages[0].content[0]"),
    (_msgs(U, {"role": "assistant", "content": None, "audio": {"id": "audio_1"}}),
     "messages[1].audio"),
    (_msgs(U, {"role": "assistant", "content": None, "function_call": {
        "name": "f", "arguments": "{}"}}), "messages[1].function_call"),
    (_msgs(U, {"role": "assistant", "tool_calls": [{"id": "c", "type": "custom", "custom": {
        "name": "f", "input": "x"}}]}), "messages[1].tool_calls[0]"),
    (_msgs(U, {"role": "assistant", "content": [{"type": "image_url", "image_url": {
        "url": "https://x/a.png"}}]}), "messages[1].content[0]"),
    (_msgs(U, A_CALL, {"role": "tool", "tool_call_id": "t1", "content": [
        {"type": "image_url", "image_url": {"url": "https://x/a.png"}}]}),
     "messages[2].content[0]"),
    (_req(functions=[{"name": "f", "parameters": {"type": "object"}}], function_call="auto"),
     "functions"),
]


@pytest.mark.parametrize(("request_doc", "field"), UNSUPPORTED + CONTENT,
                         ids=[f"{f}-{i}" for i, (_, f) in enumerate(UNSUPPORTED + CONTENT)])
def test_unsupported_is_refused_naming_the_field(request_doc: dict, field: str) -> None:
    with pytest.raises(Unsupported) as err:
        translate_request(request_doc, BACKEND)
    assert err.value.field == field


@pytest.mark.parametrize(("request_doc", "field"), UNSUPPORTED,
                         ids=[f"{f}-{i}" for i, (_, f) in enumerate(UNSUPPORTED)])
def test_drop_mode_leaves_it_out_and_lists_it(request_doc: dict, field: str) -> None:
    t = translate_request(request_doc, BACKEND, drop_unsupported=True)
    assert t.dropped == (field,)
    body = json.loads(t.body)
    top = field.split(".")[0].split("[")[0]
    if top not in ("messages", "tools", "response_format", "stream_options", "tool_choice",
                   "reasoning_effort", "user"):
        assert top not in body   # not translated under any name Anthropic shares
    # what is left is still a request Anthropic reads
    assert body["model"] == BACKEND.model and body["messages"]


@pytest.mark.parametrize(("request_doc", "field"), CONTENT,
                         ids=[f"{f}-{i}" for i, (_, f) in enumerate(CONTENT)])
def test_content_and_legacy_functions_are_refused_even_in_drop_mode(request_doc: dict,
                                                                     field: str) -> None:
    with pytest.raises(Unsupported) as err:
        translate_request(request_doc, BACKEND, drop_unsupported=True)
    assert err.value.field == field


def test_thinking_is_fine_after_an_earlier_tool_loop_ended() -> None:
    t = translate_request(_msgs(U, A_CALL, {"role": "tool", "tool_call_id": "t1", "content": "ok"},
                                {"role": "assistant", "content": "Done."}, U,
                                reasoning_effort="low", tools=TOOLS), BACKEND)
    assert json.loads(t.body)["thinking"] == {"type": "enabled", "budget_tokens": 2048}


def test_drop_mode_with_a_refused_effort_keeps_the_limit_and_no_thinking() -> None:
    t = translate_request(_req(reasoning_effort="low", max_completion_tokens=1000), BACKEND,
                          drop_unsupported=True)
    body = json.loads(t.body)
    assert body["max_tokens"] == 1000 and "thinking" not in body


MALFORMED = [
    ({"model": "m", "messages": []}, "messages"),
    ({"model": "m"}, "messages"),
    (_msgs(U, {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {
        "name": "f", "arguments": "{not json"}}]}), "messages[1].tool_calls[0].function.arguments"),
    (_msgs(U, {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {
        "name": "f", "arguments": "[1, 2]"}}]}), "messages[1].tool_calls[0].function.arguments"),
    (_msgs({"role": "robot", "content": "x"}), "messages[0].role"),
    (_msgs({"role": "tool", "content": "x"}), "messages[0].tool_call_id"),
    (_req(temperature="hot"), "temperature"),
    (_req(temperature=-0.1), "temperature"),
    (_req(top_p=1.5), "top_p"),
    (_req(max_tokens=0), "max_tokens"),
    (_req(max_completion_tokens=2.5), "max_completion_tokens"),
    # the second limit given is checked too (it was passed over once the first was read)
    (_req(max_completion_tokens=5, max_tokens=-1), "max_tokens"),
    (_req(max_completion_tokens=5, max_tokens="x"), "max_tokens"),
    (_req(reasoning_effort="extreme"), "reasoning_effort"),
    (_req(stop=[1]), "stop"),
    (_req(tool_choice="sometimes"), "tool_choice"),
    (_req(response_format={"type": "yaml"}), "response_format"),
    (_req(response_format={"type": "json_schema", "json_schema": {"name": "a"}}),
     "response_format.json_schema.schema"),
    (_req(tools=[{"type": "function", "function": {"name": JSON_TOOL}}]),
     "tools[0].function.name"),
    # (a description that is not a text would reach Anthropic as the client's object)
    (_req(tools=[{"type": "function", "function": {"name": "f", "description": {"a": 1}}}]),
     "tools[0].function.description"),
    (_req(tools=[{"type": "function", "function": {"name": "f", "description": ["x"]}}]),
     "tools[0].function.description"),
    # default deny, as the Gemini backend refuses them (found by review: the unknown keys
    # of a named tool choice were ignored, a text format's schema silently left out, and
    # stream_options without stream taken)
    (_req(tools=TOOLS, tool_choice={"type": "function", "function": {"name": "f"},
                                    "extra": True}), "tool_choice"),
    (_req(tools=TOOLS, tool_choice={"type": "function", "function": {"name": "f",
                                                                     "bogus": 1}}),
     "tool_choice"),
    (_req(response_format={"type": "text", "json_schema": {
        "name": "x", "schema": {"type": "object"}}}), "response_format"),
    (_req(response_format={"type": "json_object", "json_schema": {
        "name": "x", "schema": {"type": "object"}}}), "response_format"),
    (_req(stream_options={"include_usage": True}), "stream_options"),
    (_req(stream=False, stream_options={"include_usage": True}), "stream_options"),
]


@pytest.mark.parametrize(("request_doc", "field"), MALFORMED,
                         ids=[f"{f}-{i}" for i, (_, f) in enumerate(MALFORMED)])
def test_malformed_is_refused_even_in_drop_mode(request_doc: dict, field: str) -> None:
    for drop in (False, True):
        with pytest.raises(Unsupported) as err:
            translate_request(request_doc, BACKEND, drop_unsupported=drop)
        assert err.value.field == field


def test_every_chat_completions_field_is_known() -> None:
    """Each field of openai-python's CompletionCreateParams is translated or refused, never
    refused as unknown (the translator's tables cover the current API)."""
    from openai.types.chat.completion_create_params import (
        CompletionCreateParamsNonStreaming,
        CompletionCreateParamsStreaming,
    )
    fields = set(CompletionCreateParamsStreaming.__annotations__) | set(
        CompletionCreateParamsNonStreaming.__annotations__)
    for cls in CompletionCreateParamsStreaming.__mro__:
        fields |= set(getattr(cls, "__annotations__", {}))
    assert len(fields) > 35
    for name in sorted(fields - {"messages", "model"}):
        try:
            translate_request(_req(**{name: {"__probe__": 1}}), BACKEND)
        except Unsupported as err:
            assert not (err.field == name and "unknown field" in err.reason), name


# -- replies: goldens --------------------------------------------------------------------------

def _mock_reply() -> Reply:
    return Reply.make("Hello there, how can I help you today? \u00e9\u00e8 \U0001f600",
                      "claude-sonnet-4-5", "01MockResponseIdABCDEFGHIJKL", 1700000000.0, 12)


def _mock_stream(shape: str | None) -> bytes:
    return b"".join(mock.build_stream({}, _mock_reply(), shape))


def _mock_whole(shape: str | None) -> bytes:
    return mock.build_response({}, _mock_reply(), shape)


# name -> (input bytes, status, content type, context, json_tool)
STREAMS: dict[str, tuple[bytes, ReplyContext, str | None]] = {
    "anthropic_text_stream": ((GOLDEN / "anthropic_text_stream.sse").read_bytes(), CTX, None),
    "anthropic_text_stream.nousage": ((GOLDEN / "anthropic_text_stream.sse").read_bytes(),
                                      ReplyContext("claude-front", True, False, 1700000000),
                                      None),
    "anthropic_thinking_stream": ((GOLDEN / "anthropic_thinking_stream.sse").read_bytes(), CTX,
                                  None),
    "anthropic_tool_use_stream": ((GOLDEN / "anthropic_tool_use_stream.sse").read_bytes(), CTX,
                                  None),
    "anthropic_error_stream": ((GOLDEN / "anthropic_error_stream.sse").read_bytes(), CTX, None),
    "anthropic_mock_plain_stream": (_mock_stream(None), CTX, None),
    "anthropic_mock_thinking_stream": (_mock_stream("thinking"), CTX, None),
    "anthropic_mock_tool_stream": (_mock_stream("tool"), CTX, None),
    "anthropic_mock_tool-escaped_stream": (_mock_stream("tool-escaped"), CTX, None),
    "anthropic_mock_start_stream": (_mock_stream("start"), CTX, None),
    "anthropic_mock_json_stream": (_mock_stream("tool"), CTX, mock.TOOL_NAME),
    "anthropic_mock_json-escaped_stream": (_mock_stream("tool-escaped"),
                                           ReplyContext("claude-front", True, False, 1,
                                                        "chatcmpl-given"), mock.TOOL_NAME),
}
WHOLE_CTX = ReplyContext("claude-front", False, False, 1700000000)
WHOLES: dict[str, tuple[bytes, ReplyContext, str | None]] = {
    "anthropic_response": ((GOLDEN / "anthropic_response.json").read_bytes(), WHOLE_CTX, None),
    "anthropic_mock_plain_response": (_mock_whole(None), WHOLE_CTX, None),
    "anthropic_mock_thinking_response": (_mock_whole("thinking"), WHOLE_CTX, None),
    "anthropic_mock_tool_response": (_mock_whole("tool"), WHOLE_CTX, None),
    "anthropic_mock_json_response": (_mock_whole("tool"), WHOLE_CTX, mock.TOOL_NAME),
}


def _run(data: bytes, pieces: list[int], status: int, ctype: str, ctx: ReplyContext,
         json_tool: str | None) -> bytes:
    tr = reply_translator(status, ctype, ctx, json_tool=json_tool)
    out, pos = bytearray(), 0
    for size in pieces:
        out += tr.feed(data[pos:pos + size])
        pos += size
    out += tr.feed(data[pos:])
    return bytes(out + tr.finish())


def _events(stream: bytes) -> list[dict[str, Any] | str]:
    assert stream.endswith(b"\n\n")
    out: list[dict[str, Any] | str] = []
    for frame in stream.decode().split("\n\n")[:-1]:
        assert frame.startswith("data: ") and "\n" not in frame, frame
        out.append("[DONE]" if frame == "data: [DONE]" else json.loads(frame[6:]))
    return out


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_stream_goldens_validate_as_openai_chunks(name: str) -> None:
    data, ctx, json_tool = STREAMS[name]
    out = _run(data, [], 200, "text/event-stream", ctx, json_tool)
    golden(f"{name}.out.sse", out)
    events = _events(out)
    errored = "error" in name
    assert events[-1] == ("[DONE]" if not errored else events[-1])
    for ev in events:
        if ev == "[DONE]":
            continue
        assert isinstance(ev, dict)
        if "error" in ev:
            assert errored and ev is events[-1]
            assert set(ev["error"]) == {"message", "type", "param", "code"}
            continue
        chunk = ChatCompletionChunk.model_validate(ev)
        assert chunk.model == "claude-front" and chunk.created == ctx.created
        assert chunk.id == (ctx.id or chunk.id) and chunk.id.startswith("chatcmpl-")
    usage = [ev for ev in events if isinstance(ev, dict) and ev.get("usage")]
    # (an errored stream after message_start: the counts reported so far, before the error)
    assert len(usage) == (1 if ctx.include_usage else 0)
    if usage:
        assert usage[0]["choices"] == [] and events[-2] is usage[0]


@pytest.mark.parametrize("name", sorted(WHOLES))
def test_whole_goldens_validate_as_openai_completions(name: str) -> None:
    data, ctx, json_tool = WHOLES[name]
    out = _run(data, [], 200, "application/json", ctx, json_tool)
    golden(f"{name}.out.json", out)
    ChatCompletion.model_validate(json.loads(out))


def test_usage_mapping_is_exact() -> None:
    doc = json.loads(_run((GOLDEN / "anthropic_response.json").read_bytes(), [], 200,
                          "application/json", WHOLE_CTX, None))
    assert doc["usage"] == {"prompt_tokens": 410 + 3072, "completion_tokens": 96,
                            "total_tokens": 410 + 3072 + 96,
                            "prompt_tokens_details": {"cached_tokens": 3072,
                                                      "cache_write_tokens": 0}}
    last = _events(_run((GOLDEN / "anthropic_thinking_stream.sse").read_bytes(), [], 200,
                        "text/event-stream", CTX, None))[-2]
    assert last["usage"] == {"prompt_tokens": 46 + 1200, "completion_tokens": 117,
                             "total_tokens": 1363,
                             "prompt_tokens_details": {"cached_tokens": 0,
                                                       "cache_write_tokens": 1200}}
    thinking = anthropic_reply.openai_usage({"input_tokens": 5, "output_tokens": 40,
                                             "output_tokens_details": {"thinking_tokens": 30}})
    assert thinking["completion_tokens_details"] == {"reasoning_tokens": 30}


# -- replies: read by the OpenAI SDK -----------------------------------------------------------

def _client(status: int, body: bytes, ctype: str) -> openai.OpenAI:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, content=body, headers={"content-type": ctype})
    return openai.OpenAI(api_key="sk-test", base_url="http://gateway.test/v1", max_retries=0,
                         http_client=httpx2.Client(transport=httpx2.MockTransport(handler)))


def _accumulate(name: str) -> tuple[str, str, dict[int, tuple[str, str, str]], str | None, Any]:
    data, ctx, json_tool = STREAMS[name]
    out = _run(data, [], 200, "text/event-stream", ctx, json_tool)
    client = _client(200, out, "text/event-stream")
    text, reasoning, calls, finish, usage = "", "", {}, None, None
    for chunk in client.chat.completions.create(model="claude-front", messages=[U], stream=True,
                                                stream_options={"include_usage": True}):
        usage = chunk.usage or usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            reasoning += getattr(choice.delta, "reasoning_content", None) or ""
            for call in choice.delta.tool_calls or []:
                cid, fname, args = calls.get(call.index, ("", "", ""))
                calls[call.index] = (cid + (call.id or ""),
                                     fname + (call.function.name or "" if call.function else ""),
                                     args + (call.function.arguments or "" if call.function
                                             else ""))
            finish = choice.finish_reason or finish
    return text, reasoning, calls, finish, usage


def test_sdk_reads_the_text_stream() -> None:
    text, reasoning, calls, finish, usage = _accumulate("anthropic_text_stream")
    assert text == ("Why did the scarecrow win an award?\n\n"
                    "Because he was outstanding in his field! 🌾")
    assert (reasoning, calls, finish) == ("", {}, "stop")
    assert (usage.prompt_tokens, usage.completion_tokens) == (2069, 22)
    assert usage.prompt_tokens_details.cached_tokens == 2048


def test_sdk_reads_the_tool_stream_arguments_exactly() -> None:
    text, _, calls, finish, _ = _accumulate("anthropic_tool_use_stream")
    assert text == "Okay, let me check the weather in Paris:"
    assert calls == {0: ("toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather",
                         '{"location": "Paris, FR", "unit": "celsius"}')}
    assert finish == "tool_calls"
    _, _, calls, _, _ = _accumulate("anthropic_mock_tool-escaped_stream")
    assert json.loads(calls[0][2]) == {"text": _mock_reply().text}


def test_sdk_reads_thinking_and_json_mode() -> None:
    text, reasoning, _, finish, _ = _accumulate("anthropic_thinking_stream")
    assert reasoning.startswith("I need to find the GCD") and reasoning.endswith("GCD is 21.")
    assert text == "The greatest common divisor of 1071 and 462 is **21**." and finish == "stop"
    for name in ("anthropic_mock_json_stream", "anthropic_mock_json-escaped_stream"):
        text, _, calls, finish, _ = _accumulate(name)
        assert json.loads(text) == {"text": _mock_reply().text}
        assert (calls, finish) == ({}, "stop")
        # the escapes the model wrote are gone: the guards read content as plain text
        assert text == json.dumps({"text": _mock_reply().text}, ensure_ascii=False,
                                  separators=(",", ":"))


def test_sdk_raises_the_midstream_error() -> None:
    with pytest.raises(openai.APIError, match="Overloaded"):
        _accumulate("anthropic_error_stream")


def test_sdk_reads_the_whole_completion() -> None:
    data, ctx, _ = WHOLES["anthropic_response"]
    out = _run(data, [], 200, "application/json", ctx, None)
    done = _client(200, out, "application/json").chat.completions.create(
        model="claude-front", messages=[U])
    msg = done.choices[0].message
    assert msg.content == "I'll look up the current weather in Paris for you."
    assert msg.tool_calls[0].function.name == "get_weather"
    assert json.loads(msg.tool_calls[0].function.arguments) == {"location": "Paris, FR",
                                                                "unit": "celsius"}
    assert done.choices[0].finish_reason == "tool_calls" and done.usage.total_tokens == 3578


@pytest.mark.parametrize(("status", "sdk_error"), [(429, openai.RateLimitError),
                                                   (529, openai.InternalServerError)])
def test_sdk_raises_translated_errors(status: int, sdk_error: type) -> None:
    out = _run(mock.error_body(status), [], status, "application/json", WHOLE_CTX, None)
    with pytest.raises(sdk_error):
        _client(status, out, "application/json").chat.completions.create(
            model="claude-front", messages=[U])


# -- replies: errors and unreadable input ------------------------------------------------------

@pytest.mark.parametrize(("status", "kind", "code"), [
    (400, "invalid_request_error", None), (401, "authentication_error", None),
    (402, "insufficient_quota", "insufficient_quota"), (403, "permission_error", None),
    (404, "not_found_error", None), (413, "invalid_request_error", "request_too_large"),
    (429, "rate_limit_error", "rate_limit_exceeded"), (500, "server_error", None),
    (504, "server_error", "timeout"), (529, "server_error", "overloaded")])
def test_error_statuses_are_mapped(status: int, kind: str, code: str | None) -> None:
    body = mock.error_body(status, "upstream says no", "req_1")
    out = json.loads(_run(body, [], status, "application/json", CTX, None))
    assert out == {"error": {"message": "upstream says no", "type": kind, "param": None,
                             "code": code}}


@pytest.mark.parametrize("body", [b"<html>502 Bad Gateway secret-token</html>", b"",
                                  b'{"error": "x"}', b'{"type":"error","error":{"type":5}}',
                                  b"x" * (2 << 20)])
def test_an_error_body_that_is_not_anthropics_is_not_passed_on(body: bytes) -> None:
    out = json.loads(_run(body, [], 502, "text/html", CTX, None))
    assert out["error"]["type"] == "server_error" and out["error"]["code"] == "upstream_error"
    assert "secret" not in json.dumps(out) and "HTTP 502" in out["error"]["message"]


def test_unknown_anthropic_error_type_keeps_it_as_code() -> None:
    body = b'{"type":"error","error":{"type":"new_error","message":"m"}}'
    out = json.loads(_run(body, [], 409, "application/json", CTX, None))
    assert out["error"] == {"message": "m", "type": "invalid_request_error", "param": None,
                            "code": "new_error"}


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"type":"message"}',
                                  b'{"type":"message","content":[{"type":"server_tool_use",'
                                  b'"id":"s","name":"web_search","input":{}}],"usage":{},'
                                  b'"stop_reason":"end_turn"}',
                                  b'{"type":"message","content":[],"usage":{"input_tokens":'
                                  b'"many"},"stop_reason":"end_turn"}',
                                  b'{"type":"message","content":[],"usage":{}}'])
def test_an_unreadable_whole_reply_becomes_an_error(body: bytes) -> None:
    tr = reply_translator(200, "application/json", WHOLE_CTX)
    assert tr.feed(body) == b""
    out = json.loads(tr.finish())
    assert out["error"]["code"] == "bad_upstream_reply" and tr.failed


def test_an_over_cap_whole_reply_becomes_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(anthropic_reply, "MAX_BODY", 100)
    tr = reply_translator(200, "application/json", WHOLE_CTX)
    assert tr.feed(b"{" + b" " * 80) == b"" and tr.held_bytes == 81
    assert tr.feed(b" " * 80) == b"" and tr.held_bytes == 0
    assert json.loads(tr.finish())["error"]["code"] == "bad_upstream_reply"


def test_the_whole_reply_uses_the_given_id_and_null_content_for_tool_calls_only() -> None:
    ctx = ReplyContext("claude-front", False, created=5, id="chatcmpl-mine")
    doc = json.loads(_run(_mock_whole("tool"), [], 200, "application/json", ctx, None))
    assert doc["id"] == "chatcmpl-mine" and doc["choices"][0]["message"]["content"] is None
    assert doc["choices"][0]["finish_reason"] == "tool_calls"


def _stream_of(*events: dict[str, Any]) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


START = {"type": "message_start", "message": {"id": "msg_1", "type": "message",
                                              "role": "assistant", "content": [],
                                              "usage": {"input_tokens": 3, "output_tokens": 1}}}
TEXT0 = {"type": "content_block_start", "index": 0, "content_block": {"type": "text",
                                                                      "text": ""}}
STOP = [{"type": "message_delta", "delta": {"stop_reason": "end_turn"},
         "usage": {"output_tokens": 2}}, {"type": "message_stop"}]


def _last_error(out: bytes) -> dict[str, Any]:
    events = _events(out)
    assert "[DONE]" not in events
    last = events[-1]
    assert isinstance(last, dict) and "error" in last
    return last["error"]


@pytest.mark.parametrize("data", [
    _stream_of(START, {"type": "content_block_start", "index": 0, "content_block": {
        "type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}},
        *STOP),
    _stream_of(START, {"type": "content_block_start", "index": 0, "content_block": {
        "type": "web_search_tool_result", "tool_use_id": "s", "content": []}}, *STOP),
    _stream_of(START, TEXT0, {"type": "content_block_delta", "index": 0, "delta": {
        "type": "input_json_delta", "partial_json": "{}"}}, *STOP),
    _stream_of(START, {"type": "content_block_delta", "index": 3, "delta": {
        "type": "text_delta", "text": "x"}}, *STOP),
    _stream_of(TEXT0, *STOP),
    _stream_of(START, START, *STOP),
    _stream_of(START, {"type": "message_stop"}),
    _stream_of(START, {"type": "message_delta", "delta": {}, "usage": {}}, STOP[1]),
    b"data: {not json}\n\n",
    b"<html>oops</html>",
    b"event: error\ndata: {\"type\":\"error\"}\n\n",
])
def test_unreadable_or_refused_streams_end_with_an_error_event(data: bytes) -> None:
    tr = reply_translator(200, "text/event-stream", CTX)
    out = tr.feed(data) + tr.finish()
    assert _last_error(out)["type"] == "server_error"
    assert tr.failed
    assert tr.feed(_stream_of(*STOP)) == b"" and tr.finish() == b""


def test_error_before_message_start_and_nothing_after_it() -> None:
    err = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    out = _run(_stream_of(err, START, TEXT0, *STOP), [], 200, "text/event-stream", CTX, None)
    assert _events(out) == [{"error": {"message": "slow down", "type": "rate_limit_error",
                                       "param": None, "code": "rate_limit_exceeded"}}]


def _tool_start(index: int, name: str = "get_time") -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": {
        "type": "tool_use", "id": f"toolu_{index}", "name": name, "input": {}}}


def _piece(index: int, text: str) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index,
            "delta": {"type": "input_json_delta", "partial_json": text}}


def _block_stop(index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


TOOL_STOP = [{"type": "message_delta", "delta": {"stop_reason": "tool_use"},
              "usage": {"output_tokens": 12}}, {"type": "message_stop"}]


@pytest.mark.parametrize("pieces", [[], [""], ["", ""]])
def test_a_streamed_tool_call_without_arguments_carries_an_empty_object(
        pieces: list[str]) -> None:
    """Found by review: a tool call Anthropic streams with no input (`input: {}`, then no
    argument text, or only empty pieces) reached the client as `arguments: ""`, which is not
    JSON; the whole reply (and OpenAI) gives "{}". Its block's end now carries "{}", in any
    chunking, and the OpenAI SDK reads "{}"; a call with arguments gets no more than them."""
    data = _stream_of(START, _tool_start(0), *[_piece(0, p) for p in pieces], _block_stop(0),
                      _tool_start(1, "f"), _piece(1, '{"a":'), _piece(1, " 1}"),
                      _block_stop(1), *TOOL_STOP)
    out = _run(data, [], 200, "text/event-stream", CTX, None)
    assert _run(data, [1] * len(data), 200, "text/event-stream", CTX, None) == out
    args: dict[int, str] = {}
    for ev in _events(out):
        if isinstance(ev, dict) and ev.get("choices"):
            ChatCompletionChunk.model_validate(ev)
            for call in ev["choices"][0]["delta"].get("tool_calls") or []:
                args[call["index"]] = args.get(call["index"], "") + call["function"][
                    "arguments"]
    assert args == {0: "{}", 1: '{"a": 1}'}
    whole = {**START["message"], "stop_reason": "tool_use", "content": [
        {"type": "tool_use", "id": "toolu_0", "name": "get_time", "input": {}}]}
    doc = json.loads(_run(json.dumps(whole).encode(), [], 200, "application/json", WHOLE_CTX,
                          None))
    assert doc["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == "{}"
    with _client(200, out, "text/event-stream").chat.completions.stream(
            model="claude-front", messages=[U]) as stream:
        calls = stream.get_final_completion().choices[0].message.tool_calls
    assert [c.function.arguments for c in calls] == ["{}", '{"a": 1}']


def test_a_tool_call_whose_block_never_stopped_gets_its_empty_object_at_the_finish() -> None:
    out = _run(_stream_of(START, _tool_start(0), *TOOL_STOP), [], 200, "text/event-stream",
               CTX, None)
    chunks = [ev for ev in _events(out) if isinstance(ev, dict) and ev.get("choices")]
    assert chunks[-2]["choices"][0]["delta"] == {"tool_calls": [
        {"index": 0, "function": {"arguments": "{}"}}]}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_a_json_mode_answer_whose_block_never_stopped_ends_the_stream_with_an_error() -> None:
    """Found by review: the JSON-mode answer is held until its block stops; an upstream that
    went on to message_delta without stopping it lost the answer behind a normal
    `tool_calls` finish, usage and [DONE]. It is an error event now, never a finish."""
    data = _stream_of(START, _tool_start(0, JSON_TOOL), _piece(0, '{"answer": "the reply"}'),
                      *TOOL_STOP)
    tr = reply_translator(200, "text/event-stream", CTX, json_tool=JSON_TOOL)
    out = tr.feed(data) + tr.finish()
    assert "did not end" in _last_error(out)["message"]
    assert tr.failed
    assert not any(isinstance(ev, dict) and ev.get("choices") and
                   ev["choices"][0].get("finish_reason") for ev in _events(out))
    stopped = _stream_of(START, _tool_start(0, JSON_TOOL), _piece(0, '{"answer": "x"}'),
                         _block_stop(0), *TOOL_STOP)
    assert b"[DONE]" in _run(stopped, [], 200, "text/event-stream", CTX, JSON_TOOL)


def test_a_streamed_tool_call_given_whole_at_its_start_gets_nothing_more() -> None:
    start = _tool_start(0)
    start["content_block"]["input"] = {"tz": "UTC"}
    out = _run(_stream_of(START, start, _block_stop(0), *TOOL_STOP), [], 200,
               "text/event-stream", CTX, None)
    calls = [call for ev in _events(out) if isinstance(ev, dict) and ev.get("choices")
             for call in ev["choices"][0]["delta"].get("tool_calls") or []]
    assert [c["function"]["arguments"] for c in calls] == ['{"tz":"UTC"}']


ERROR = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
BIG_START = {"type": "message_start", "message": {**START["message"], "usage": {
    "input_tokens": 3000, "cache_read_input_tokens": 10, "output_tokens": 1}}}


@pytest.mark.parametrize("include_usage", [True, False])
def test_an_error_event_keeps_the_counts_anthropic_reported(include_usage: bool) -> None:
    """Found by review: an error event after message_start threw Anthropic's counts away, so
    the budgets charged the gateway's estimate of the prompt (402 tokens) where the native
    route charges the 3,000 Anthropic reported. With include_usage (which the gateway adds
    for its meter) the counts reported so far go out as a usage chunk right before the
    error event; the stream is not marked failed, nor its usage unread (as the native
    route, which charges at least them and the output delivered)."""
    ctx = ReplyContext("claude-front", True, include_usage, 1700000000)
    data = _stream_of(BIG_START, TEXT0, {"type": "content_block_delta", "index": 0, "delta": {
        "type": "text_delta", "text": "partial"}}, ERROR)
    tr = reply_translator(200, "text/event-stream", ctx)
    out = b"".join(tr.feed(data[i:i + 7]) for i in range(0, len(data), 7)) + tr.finish()
    events = _events(out)
    assert _last_error(out)["code"] == "overloaded"
    assert not tr.failed and not tr.usage_unread
    usage = [ev for ev in events if isinstance(ev, dict) and ev.get("usage")]
    if not include_usage:
        assert usage == []
        return
    assert usage == [events[-2]] and usage[0]["choices"] == []
    assert usage[0]["usage"] == {"prompt_tokens": 3010, "completion_tokens": 1,
                                 "total_tokens": 3011,
                                 "prompt_tokens_details": {"cached_tokens": 10,
                                                           "cache_write_tokens": 0}}
    ChatCompletionChunk.model_validate(usage[0])
    with pytest.raises(openai.APIError, match="Overloaded"):
        for _ in _client(200, out, "text/event-stream").chat.completions.create(
                model="claude-front", messages=[U], stream=True):
            pass


def test_an_error_event_after_the_final_count_carries_it() -> None:
    data = _stream_of(BIG_START, TEXT0, {"type": "message_delta", "delta": {
        "stop_reason": "end_turn"}, "usage": {"output_tokens": 40}}, ERROR)
    tr = reply_translator(200, "text/event-stream", CTX)
    events = _events(tr.feed(data) + tr.finish())
    assert events[-2]["usage"]["completion_tokens"] == 40 and not tr.usage_unread


@pytest.mark.parametrize(("final", "unread"), [(False, True), (True, False)])
def test_an_error_event_of_a_thinking_request_before_its_final_count_is_unread(
        final: bool, unread: bool) -> None:
    """With thinking asked for, message_start's counts leave out the thinking Anthropic
    bills before anything shows: an error before the final count marks the usage unread (its
    counts still go out), so the budgets charge the reservation, as the native route does
    for a thinking request whose stream ends with message_start's counts."""
    ctx = ReplyContext("claude-front", True, True, 1700000000, thinking=True)
    events = [BIG_START, {"type": "content_block_start", "index": 0, "content_block": {
        "type": "thinking", "thinking": ""}}]
    if final:
        events.append({"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                       "usage": {"output_tokens": 40}})
    tr = reply_translator(200, "text/event-stream", ctx)
    got = _events(tr.feed(_stream_of(*events, ERROR)) + tr.finish())
    assert tr.usage_unread is unread and not tr.failed
    assert got[-2]["usage"]["prompt_tokens"] == 3010


def test_an_error_event_before_any_count_has_no_usage() -> None:
    tr = reply_translator(200, "text/event-stream", CTX)
    events = _events(tr.feed(_stream_of(ERROR)) + tr.finish())
    assert len(events) == 1 and not tr.usage_unread and not tr.failed


def test_dropped_events_and_deltas_release_nothing() -> None:
    events = [START, {"type": "ping"}, {"type": "brand_new_event", "x": 1},
              {"type": "content_block_start", "index": 0, "content_block": {
                  "type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"}},
              {"type": "content_block_stop", "index": 0}, {**TEXT0, "index": 1},
              {"type": "content_block_delta", "index": 1, "delta": {
                  "type": "citations_delta", "citation": {"type": "char_location"}}},
              {"type": "content_block_delta", "index": 1, "delta": {
                  "type": "text_delta", "text": "ok"}}, *STOP]
    ctx = ReplyContext("claude-front", True, False, 9)
    got = [e for e in _events(_run(_stream_of(*events), [], 200, "text/event-stream", ctx,
                                   None)) if e != "[DONE]"]
    assert [c["choices"][0]["delta"] for c in got] == [
        {"role": "assistant", "content": ""}, {"content": "ok"}, {}]


@pytest.mark.parametrize(("reason", "finish"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("pause_turn", "stop"),
    ("max_tokens", "length"), ("model_context_window_exceeded", "length"),
    ("tool_use", "tool_calls"), ("refusal", "content_filter"), ("something_new", "stop")])
def test_finish_reasons(reason: str, finish: str) -> None:
    events = [START, TEXT0, {"type": "message_delta", "delta": {"stop_reason": reason},
                             "usage": {"output_tokens": 2}}, STOP[1]]
    got = _events(_run(_stream_of(*events), [], 200, "text/event-stream", CTX, None))
    assert got[-3]["choices"][0]["finish_reason"] == finish
    whole = {**START["message"], "content": [{"type": "text", "text": "x"}],
             "stop_reason": reason}
    doc = json.loads(_run(json.dumps(whole).encode(), [], 200, "application/json", WHOLE_CTX,
                          None))
    assert doc["choices"][0]["finish_reason"] == finish


def test_held_bytes_is_the_incomplete_event() -> None:
    tr = reply_translator(200, "text/event-stream", CTX)
    data = _stream_of(START, TEXT0)
    assert tr.feed(data[:-5]) and tr.held_bytes > 0
    tr.feed(data[-5:])
    assert tr.held_bytes == 0


# -- any chunking ------------------------------------------------------------------------------

ALL_INPUTS = ([(d, 200, "text/event-stream", c, j) for d, c, j in STREAMS.values()]
              + [(d, 200, "application/json", c, j) for d, c, j in WHOLES.values()]
              + [(mock.error_body(s), s, "application/json", CTX, None)
                 for s in (400, 429, 529)]
              + [(b"<html>bad gateway</html>", 502, "text/html", CTX, None)])


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_chunking_gives_the_same_bytes(data: st.DataObject) -> None:
    body, status, ctype, ctx, json_tool = data.draw(st.sampled_from(ALL_INPUTS))
    whole = _run(body, [], status, ctype, ctx, json_tool)
    pieces = data.draw(st.lists(st.integers(0, max(1, len(body) // 3)), max_size=40))
    assert _run(body, pieces, status, ctype, ctx, json_tool) == whole


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_cut_stream_ends_with_an_error_never_done(data: st.DataObject) -> None:
    body, ctx, json_tool = data.draw(st.sampled_from([v for k, v in STREAMS.items()
                                                      if "error" not in k]))
    cut = data.draw(st.integers(0, len(body.rstrip(b"\n")) - 1))
    whole = _run(body, [], 200, "text/event-stream", ctx, json_tool)
    out = _run(body[:cut], [], 200, "text/event-stream", ctx, json_tool)
    assert _last_error(out)["code"] == "bad_upstream_reply"
    assert whole.startswith(out[:out.rindex(b"data: {\"error\"")])  # a prefix, then the error


def test_an_event_past_the_routes_bound_ends_the_stream_with_an_error() -> None:
    """The route's streams.max_event_bytes bounds what is held to translate: an event past it
    cannot go out untranslated, so the stream ends there with an OpenAI error event, in any
    chunking, and nothing stays held."""
    data = _mock_stream(None)
    largest = max(len(frame) for frame in data.split(b"\n\n"))
    for bound, fails in ((largest + 8, False), (largest // 2, True)):
        ctx = ReplyContext("claude-front", True, True, 1700000000, max_event_bytes=bound)
        for pieces in ([], [7] * (len(data) // 7)):
            events = _events(_run(data, pieces, 200, "text/event-stream", ctx, None))
            last = events[-1]
            if fails:
                assert isinstance(last, dict) and "exceeds" in last["error"]["message"]
            else:
                assert last == "[DONE]"


DEEP = b"[" * 100000 + b"]" * 100000


def _stream_with(delta_json: bytes) -> bytes:
    start = (b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1",'
             b'"type":"message","role":"assistant","content":[],"model":"m","usage":'
             b'{"input_tokens":1,"output_tokens":1}}}\n\n')
    return start + (
        b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        b'"content_block":{"type":"text","text":""}}\n\n'
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":' + delta_json + b'}}\n\n'
        b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
        b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":'
        b'"end_turn"},"usage":{"output_tokens":2}}\n\n'
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n')


def test_a_lone_surrogate_stays_escaped_and_deep_json_is_unreadable() -> None:
    """Half a surrogate pair goes on escaped (UTF-8 cannot carry it), and JSON nested deeper
    than Python reads is an unreadable reply: neither is a crash (a 500 and a traceback)."""
    out = _run(_stream_with(b'"hi \\ud83d"'), [], 200, "text/event-stream", CTX, None)
    out.decode()
    assert b"\\ud83d" in out and out.endswith(b"data: [DONE]\n\n")
    whole = (b'{"id":"msg_1","type":"message","role":"assistant","model":"m","content":'
             b'[{"type":"text","text":"hi \\ud83d"}],"stop_reason":"end_turn","usage":'
             b'{"input_tokens":1,"output_tokens":2}}')
    doc = json.loads(_run(whole, [], 200, "application/json", WHOLE_CTX, None))
    assert doc["choices"][0]["message"]["content"] == "hi \ud83d"
    last = _events(_run(_stream_with(DEEP), [], 200, "text/event-stream", CTX, None))[-1]
    assert isinstance(last, dict) and "not JSON" in last["error"]["message"]
    tr = reply_translator(200, "application/json", WHOLE_CTX)
    tr.feed(whole.replace(b'"hi \\ud83d"', DEEP))
    assert json.loads(tr.finish())["error"]["code"] == "bad_upstream_reply" and tr.failed
    tr = reply_translator(400, "application/json", WHOLE_CTX)   # an error body that deep
    tr.feed(DEEP)
    assert "error" in json.loads(tr.finish())


def test_a_delta_after_its_block_stopped_ends_the_stream_with_an_error() -> None:
    """Found by review: an argument delta after its call's block stopped (after the "{}"
    the stop carries) reached the client as arguments `{}{"a":1}`, not JSON; a text delta
    after its block stopped is as far outside the protocol. The stream ends with an error
    event instead."""
    late = _stream_of(START, _tool_start(0), _block_stop(0), _piece(0, '{"a":1}'), *TOOL_STOP)
    out = _run(late, [], 200, "text/event-stream", CTX, None)
    events = _events(out)
    assert isinstance(events[-1], dict) and "error" in events[-1], events[-1]
    args = "".join(call["function"]["arguments"] for ev in events
                   if isinstance(ev, dict) and ev.get("choices")
                   for call in ev["choices"][0]["delta"].get("tool_calls") or [])
    assert args == "{}"
