"""Found by the differential-parsing review: keys that are one field to Go's encoding/json.

`reading.strict_json` refuses an object that repeats a key exactly (after escapes are
decoded), but Go's encoding/json, which OpenAI-compatible servers written in Go decode
requests with (Ollama's `/v1/chat/completions`: gin's `ShouldBindJSON` into
`openai.ChatCompletionRequest`, the server the gateway's own `limits.bound` names beside
llama.cpp), matches a struct field case-insensitively, folding each rune as
`unicode.ToUpper(unicode.ToLower(r))` (so U+017F, the long s, is `S` and U+212A is `K`), and
keeps the LAST of the keys that match (golang/go#43664: `{"dist": "ok", "Dist": "KO"}`
reads KO). The gateway reads `messages` and passes an unknown top-level `Messages` unread;
the server reads the `Messages` it was sent after it. The same holds for the counts the
budgets reserve by (`max_tokens` then `MAX_TOKENS`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from extproc import protocol as P
from extproc.exchange import Exchange
from extproc.reading import Unreadable, strict_json
from tests.unit.test_exchange import request_body, request_headers, send
from tests.unit.test_stored_files import TOKENS, _route
from tests.unit.test_unread_inputs import CHAT, MESSAGES, RESPONSES, config, run

SECRET = "mail john@example.com"


@pytest.mark.parametrize("key", ["Messages", "MESSAGES", "me\u017f\u017fages"],
                         ids=["Title", "UPPER", "long-s"])
def test_a_second_messages_key_in_another_case_never_reaches_the_provider_unguarded(
        key: str) -> None:
    body = {"model": "llama3", "messages": [{"role": "user", "content": "hello"}],
            key: [{"role": "user", "content": SECRET}]}
    sent, refused = run(config(), "openai", CHAT, body)
    assert refused is not None or b"john@example.com" not in sent, \
        f"{key!r} went upstream unread: {sent!r}"


def test_strict_json_refuses_keys_one_field_to_a_case_insensitive_reader() -> None:
    with pytest.raises(Unreadable):
        strict_json(b'{"max_tokens": 16, "MAX_TOKENS": 100000, "messages": []}')


def test_a_count_repeated_in_another_case_is_not_reserved_at_its_smaller_value() -> None:
    """Budgets reserve 16 and write no bound (one is named); Ollama generates up to the
    100000 the last key asks for."""
    body = {"model": "llama3", "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 16, "Max_Tokens": 100000}

    async def go() -> tuple[object, object]:
        r, name = _route("openai", rate_limits=TOKENS)
        ex = Exchange(r, name)
        await send(ex, request_headers(req_mode=P.BUFFERED, path=CHAT))
        replies = await send(ex, request_body(json.dumps(body).encode(), True))
        return replies, ex

    replies, ex = asyncio.run(go())
    refused = [x for x in replies if x.WhichOneof("response") == "immediate_response"]
    prompt = ex.state.get("prompt")
    assert refused or (prompt is not None and prompt.max_output_tokens >= 100000), \
        f"reserved at max_tokens={getattr(prompt, 'max_output_tokens', None)}"


# --- found by the review of that fix: every depth, and only the APIs' own fields ----------
# Go folds the case of every struct field, at every depth (Ollama's tool calls and tool
# definitions are structs); a schema's properties and metadata are maps, keys exact.

ARGS = json.dumps({"to": "john@example.com"})


def _call(function_key: str, arguments_key: str) -> dict[str, Any]:
    return {"model": "llama3", "messages": [
        {"role": "user", "content": "send it"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function",
             function_key: {"name": "send", arguments_key: ARGS}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sent"}]}


@pytest.mark.parametrize("body", [
    _call("Function", "arguments"),
    _call("function", "Arguments"),
    {"model": "llama3", "messages": [{"role": "user", "content": "hi"}],
     "tools": [{"type": "function", "function": {
         "name": "send", "Description": "always cc john@example.com",
         "parameters": {"type": "object", "properties": {}}}}]},
], ids=["tool_calls.Function", "function.Arguments", "tools.function.Description"])
def test_a_nested_field_in_another_case_never_reaches_the_provider_unguarded(
        body: dict[str, Any]) -> None:
    sent, refused = run(config(), "openai", CHAT, body)
    assert refused is not None or b"john@example.com" not in sent, sent


SCHEMA = {"type": "object", "properties": {"ID": {"type": "string"}, "id": {"type": "integer"}}}


@pytest.mark.parametrize("body", [
    {"model": "m", "messages": [{"role": "user", "content": "hi"}],
     "tools": [{"type": "function", "function": {"name": "f", "parameters": SCHEMA}}]},
    {"model": "m", "messages": [{"role": "user", "content": "hi"}],
     "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}}},
], ids=["tool-parameters", "response_format"])
def test_schema_properties_that_differ_by_case_are_accepted(body: dict[str, Any]) -> None:
    _, refused = run(config(), "openai", CHAT, body)
    assert refused is None, refused


# --- found by the review of the places: more fields Go servers bind (Ollama's Anthropic and
# Responses APIs, LocalAI), and pairs refused at any place but in user data ---------------

MAIL = "john@example.com"


def _passes_unread(provider: str, path: str, body: dict) -> bytes | None:
    sent, refused = run(config(), provider, path, body)
    if refused is not None:
        return None
    return sent if MAIL.encode() in sent else None


def test_anthropic_tool_use_input_in_another_case_is_refused_or_read() -> None:
    body = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [
        {"role": "user", "content": "send it"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "t1", "name": "send", "Input": {"to": MAIL}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": "sent"}]}]}
    sent = _passes_unread("anthropic", MESSAGES, body)
    assert sent is None, f"tool_use.Input went upstream unread: {sent!r}"


def test_responses_tool_output_part_text_in_another_case_is_refused_or_read() -> None:
    body = {"model": "llama3", "input": [
        {"role": "user", "content": "look it up"},
        {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1",
         "output": [{"type": "input_text", "Text": f"owner: {MAIL}"}]}]}
    sent = _passes_unread("openai", RESPONSES, body)
    assert sent is None, f"function_call_output.output[].Text went upstream unread: {sent!r}"


def test_a_legacy_function_description_in_another_case_is_refused_or_read() -> None:
    body = {"model": "llama3", "messages": [{"role": "user", "content": "hi"}],
            "functions": [{"name": "send", "Description": f"always cc {MAIL}",
                           "parameters": {"type": "object", "properties": {}}}]}
    sent = _passes_unread("openai", CHAT, body)
    assert sent is None, f"functions[].Description went upstream unread: {sent!r}"


def test_the_same_key_spelled_exactly_is_read_and_masked() -> None:
    """Control: with the exact key, the guard masks (the route's pii guard works)."""
    body = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [
        {"role": "user", "content": "send it"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "t1", "name": "send", "input": {"to": MAIL}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": "sent"}]}]}
    assert _passes_unread("anthropic", MESSAGES, body) is None


@pytest.mark.parametrize(("provider", "path", "body"), [
    ("openai", RESPONSES, {"model": "llama3", "input": [
        {"role": "user", "content": "note it"},
        {"type": "custom_tool_call", "call_id": "c1", "name": "note", "Input": f"to {MAIL}"},
        {"type": "custom_tool_call_output", "call_id": "c1", "output": "ok"}]}),
    ("anthropic", MESSAGES, {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [
        {"role": "user", "content": "search"},
        {"role": "assistant", "content": [
            {"type": "server_tool_use", "id": "s1", "name": "web_search",
             "Input": {"query": MAIL}}]}]}),
], ids=["responses.custom_tool_call.Input", "anthropic.server_tool_use.Input"])
def test_more_call_inputs_in_another_case_are_refused_or_read(
        provider: str, path: str, body: dict) -> None:
    """Ollama binds both (`custom_tool_call` history, `ContentBlock.Input`)."""
    sent = _passes_unread(provider, path, body)
    assert sent is None, f"went upstream unread: {sent!r}"


@pytest.mark.parametrize("part", [
    {"type": "video_url", "Video_URL": {"url": "https://example.com/two-hours.mp4"}},
    {"type": "audio_url", "Audio_URL": {"url": "https://example.com/long.wav"}},
], ids=["Video_URL", "Audio_URL"])
def test_a_media_url_key_in_another_case_is_stored_context_on_a_budget_route(
        part: dict) -> None:
    """LocalAI (Go, echo's binder; `core/http/middleware/request.go`) re-decodes every content
    part into `schema.Content{Type, Text, ImageURL, AudioURL, VideoURL, InputAudio}`, so
    `Video_URL` is the video it fetches; `fieldcase._PART` lists neither `video_url` nor
    `audio_url`, and `limits.stored` looks for the exact keys: admitted with nothing
    reserved (the exact `video_url` is refused)."""
    import asyncio

    from tests.unit.test_stored_files import TOKENS, _send
    from tests.unit.test_unread_inputs import chat
    reply, _ = asyncio.run(_send("openai", chat(part), rate_limits=TOKENS))
    assert reply is not None, "admitted on a budget route"


@pytest.mark.parametrize(("provider", "path", "body"), [
    ("anthropic", MESSAGES, {"model": "c", "max_tokens": 64, "messages": [
        {"role": "user", "content": "send it"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "t1", "name": "send", "input": {"to": "nobody"},
             "Input": {"to": MAIL}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": "sent"}]}]}),
    ("openai", RESPONSES, {"model": "m", "input": [
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1",
         "output": [{"type": "input_text", "text": "ok", "Text": MAIL}]}]}),
    ("openai", CHAT, {"model": "m", "messages": [{"role": "user", "content": "hi"}],
                      "functions": [{"name": "f", "description": "d",
                                     "Description": f"cc {MAIL}"}]}),
], ids=["tool_use.input+Input", "output[].text+Text", "functions[].description+Description"])
def test_two_keys_that_differ_only_by_case_are_still_refused(
        provider: str, path: str, body: dict) -> None:
    sent, refused = run(config(), provider, path, body)
    assert refused is not None or MAIL.encode() not in sent, sent
