"""Provider adapters on the request side: adapter_for, parse_request (every message shape,
max-tokens fields, model and stream from body or path), is_stream_request,
add_stream_usage_option, is_usage_only_chunk, and the usage merge rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.providers import (
    PROVIDERS,
    AnthropicAdapter,
    GoogleAdapter,
    OpenAIAdapter,
    Prompt,
    Usage,
    adapter_for,
)
from extproc.providers.openai_prompts import _ROLES, all_message_slots, message_slots
from extproc.providers.unread import Unread
from extproc.providers.values import lower_role

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
OPENAI = adapter_for("openai")
AZURE = adapter_for("azure")
ANTHROPIC = adapter_for("anthropic")
GEMINI = adapter_for("gemini")
VERTEX = adapter_for("vertex")


def test_adapter_for_every_provider() -> None:
    kinds = {"openai": OpenAIAdapter, "azure": OpenAIAdapter, "anthropic": AnthropicAdapter,
             "gemini": GoogleAdapter, "vertex": GoogleAdapter}  # fmt: skip
    assert set(PROVIDERS) == set(kinds)
    for name, kind in kinds.items():
        adapter = adapter_for(name)
        assert isinstance(adapter, kind) and adapter.name == name
        assert adapter_for(name.upper()) is adapter
    with pytest.raises(ValueError, match="unknown provider"):
        adapter_for("bedrock")


def test_usage_as_dict_has_only_reported_fields() -> None:
    assert Usage().as_dict() == {}
    assert Usage(input_tokens=3, reasoning_tokens=0).as_dict() == {
        "input_tokens": 3,
        "reasoning_tokens": 0,
    }


# ---------------------------------------------------------------------------- OpenAI

OPENAI_BODY: dict[str, Any] = {
    "model": "gpt-4o",
    "stream": True,
    "messages": [
        {"role": "developer", "content": "Be terse."},
        {"role": "system", "content": [{"type": "text", "text": "Answer in French."}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this image?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
                {"type": "input_audio", "input_audio": {"data": "UklGRiQ", "format": "wav"}},
                {"type": "file", "file": {"file_id": "file-abc"}},
                {"type": "text", "text": "And this one?"},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "lookup", "arguments": '{"q":"cat"}'}},
                {"id": "call_2", "type": "function",
                 "function": {"name": "lookup", "arguments": '{"q":"dog"}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "A cat."},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "A dog."}]},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't."}]},
        {"role": "assistant", "content": None, "refusal": "No."},
        {"role": "assistant", "content": None,
         "function_call": {"name": "old", "arguments": "{}"}},
        {"role": "function", "name": "old", "content": "legacy result"},
        {"role": "user", "content": "Merci ✓"},
    ],
}  # fmt: skip


def test_openai_parse_request_every_message_shape() -> None:
    prompt = OPENAI.parse_request("/v1/chat/completions", OPENAI_BODY)
    assert prompt == Prompt(
        "gpt-4o",
        True,
        None,
        [
            ("system", "Be terse."),
            ("system", "Answer in French."),
            ("user", "What is in this image?"),
            ("user", "And this one?"),
            ("tool", '{"q":"cat"}'),
            ("tool", '{"q":"dog"}'),
            ("tool", "A cat."),
            ("tool", "A dog."),
            ("assistant", "I can't."),
            ("assistant", "No."),
            ("tool", "{}"),
            ("tool", "old"),  # a message's name is read too
            ("tool", "legacy result"),
            ("user", "Merci ✓"),
        ],
    )


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"max_completion_tokens": 256, "max_tokens": 100}, 256),
        ({"max_tokens": 100}, 100),
        ({"max_completion_tokens": None, "max_tokens": 64}, 64),
        ({}, None),
        ({"max_tokens": True}, None),
        ({"max_tokens": "100"}, None),
    ],
)
def test_openai_max_tokens(fields: dict[str, Any], expected: int | None) -> None:
    body = {"model": "gpt-4o", "messages": [], **fields}
    assert OPENAI.parse_request("/v1/chat/completions", body).max_output_tokens == expected


@pytest.mark.parametrize(
    ("path", "body", "model"),
    [
        ("/v1/chat/completions", {"model": "gpt-4o"}, "gpt-4o"),
        ("/openai/v1/chat/completions", {"model": "gpt-4o-mini"}, "gpt-4o-mini"),
        ("/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21", {}, "prod-4o"),
        ("/azure/openai/deployments/prod-4o/chat/completions", {"model": "gpt-35"}, "prod-4o"),
        ("/v1/chat/completions", {}, None),
    ],
)
def test_openai_and_azure_model(path: str, body: dict[str, Any], model: str | None) -> None:
    for adapter in (OPENAI, AZURE):
        assert adapter.parse_request(path, {**body, "messages": []}).model == model


def test_openai_stream_flag_comes_from_body() -> None:
    path = "/v1/chat/completions"
    assert OPENAI.is_stream_request(path, {"stream": True})
    assert not OPENAI.is_stream_request(path, {"stream": False})
    assert not OPENAI.is_stream_request(path, {"stream": "true"})
    assert not OPENAI.is_stream_request(path, {})
    assert not OPENAI.is_stream_request(path, None)
    assert not OPENAI.parse_request(path, {"messages": []}).stream


# ------------------------------------------------------------------------- Anthropic

ANTHROPIC_BODY: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 1024,
    "stream": True,
    "system": [
        {"type": "text", "text": "You are helpful.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Be brief."},
    ],
    "messages": [
        {"role": "user", "content": "Hello"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm, weather", "signature": "EqQBCgIY"},
                {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"},
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "search",
                 "input": {"query": "météo", "days": 3}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "Sunny"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": False,
                 "content": [
                     {"type": "text", "text": "Rain later"},
                     {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                  "data": "iVBORw0K"}},
                     {"type": "text", "text": "Wind 20 km/h"},
                 ]},
                {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
                {"type": "text", "text": "Summarise please."},
                {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                                "data": "Doc body."}},
                {"type": "document", "source": {"type": "base64",
                                                "media_type": "application/pdf",
                                                "data": "JVBERi0x"}},
            ],
        },
    ],
}  # fmt: skip


def test_anthropic_parse_request_every_block_shape() -> None:
    prompt = ANTHROPIC.parse_request("/v1/messages", ANTHROPIC_BODY)
    assert prompt == Prompt(
        "claude-sonnet-4-5",
        True,
        1024,
        [
            ("system", "You are helpful."),
            ("system", "Be brief."),
            ("user", "Hello"),
            ("assistant", "hmm, weather"),  # earlier thinking is read (not redacted thinking)
            ("assistant", "Let me check."),
            ("tool", '{"query":"météo","days":3}'),
            ("tool", "Sunny"),
            ("tool", "Rain later"),
            ("tool", "Wind 20 km/h"),
            ("user", "Summarise please."),
            ("user", "Doc body."),
        ],
    )


def test_anthropic_system_string_and_no_stream() -> None:
    body = {
        "model": "claude-3-5-haiku-latest",
        "max_tokens": 5,
        "system": "Short.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
    }
    prompt = ANTHROPIC.parse_request("/anthropic/v1/messages", body)
    assert prompt == Prompt("claude-3-5-haiku-latest", False, 5, [("system", "Short."),
                                                                 ("user", "Hi")])  # fmt: skip
    assert not ANTHROPIC.is_stream_request("/v1/messages", body)
    assert ANTHROPIC.is_stream_request("/v1/messages", {**body, "stream": True})
    assert ANTHROPIC.add_stream_usage_option(b"{}", {**body, "stream": True}) is None


# ---------------------------------------------------------------------- Gemini/Vertex

GEMINI_BODY: dict[str, Any] = {
    "systemInstruction": {"parts": [{"text": "You are a poet."}, {"text": "Rhyme."}]},
    "contents": [
        {"role": "user", "parts": [
            {"text": "Write about"},
            {"inlineData": {"mimeType": "image/png", "data": "iVBORw0K"}},
            {"fileData": {"mimeType": "video/mp4", "fileUri": "gs://b/v.mp4"}},
            {"text": "this picture"},
        ]},
        {"role": "model", "parts": [
            {"text": "Considering the image...", "thought": True},
            {"text": "I'll describe it."},
            {"functionCall": {"name": "describe", "args": {"detail": "high"}},
             "thoughtSignature": "CiQB0e2K"},
        ]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "describe", "response": {"caption": "a cat"}}},
        ]},
        {"parts": [{"text": "No role means user"}]},
    ],
    "generationConfig": {"maxOutputTokens": 512, "temperature": 0.2},
}  # fmt: skip

GEMINI_TEXTS = [
    ("system", "You are a poet."),
    ("system", "Rhyme."),
    ("user", "Write about"),
    ("user", "this picture"),
    ("assistant", "Considering the image..."),  # earlier thought parts are read
    ("assistant", "I'll describe it."),
    ("tool", '{"detail":"high"}'),
    ("tool", '{"caption":"a cat"}'),
    ("user", "No role means user"),
]


def snake_case(body: dict[str, Any]) -> dict[str, Any]:
    """The same request in proto (snake_case) field names, which Google also accepts."""
    text = json.dumps(body)
    for camel, snake in [("systemInstruction", "system_instruction"),
                         ("functionCall", "function_call"),
                         ("functionResponse", "function_response"),
                         ("generationConfig", "generation_config"),
                         ("maxOutputTokens", "max_output_tokens"),
                         ("inlineData", "inline_data")]:  # fmt: skip
        text = text.replace(f'"{camel}"', f'"{snake}"')
    return json.loads(text)


@pytest.mark.parametrize("form", [dict, snake_case], ids=["camelCase", "snake_case"])
def test_gemini_parse_request_every_part_shape(form: Any) -> None:
    path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    prompt = GEMINI.parse_request(path, form(GEMINI_BODY))
    assert prompt == Prompt("gemini-2.5-flash", True, 512, GEMINI_TEXTS)


def test_gemini_system_instruction_forms() -> None:
    path = "/v1beta/models/gemini-2.0-flash:generateContent"
    for system in ("Plain string.", {"role": "system", "parts": [{"text": "Plain string."}]},
                   {"parts": [{"text": "Plain string."}]}):  # fmt: skip
        body = {"systemInstruction": system, "contents": [{"parts": [{"text": "Hi"}]}]}
        assert GEMINI.parse_request(path, body).texts == [
            ("system", "Plain string."),
            ("user", "Hi"),
        ]
    body = {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}
    assert GEMINI.parse_request(path, body).max_output_tokens is None


@pytest.mark.parametrize(
    ("path", "model", "stream"),
    [
        ("/v1beta/models/gemini-2.0-flash:generateContent", "gemini-2.0-flash", False),
        ("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", "gemini-2.5-flash", True),
        ("/v1beta/models/gemini-2.5-pro:streamGenerateContent", "gemini-2.5-pro", True),
        ("/gemini/v1beta/models/gemini-2.5-pro:streamGenerateContent?key=k&alt=sse",
         "gemini-2.5-pro", True),
        ("/v1beta/models/gemini-2.0-flash%3AstreamGenerateContent", "gemini-2.0-flash", True),
        ("/v1beta/tunedModels/my-tune-7:generateContent", "my-tune-7", False),
        ("/v1/projects/my-proj/locations/us-central1/publishers/google/models/"
         "gemini-2.5-flash:streamGenerateContent?alt=sse", "gemini-2.5-flash", True),
        ("/vertex/v1/projects/p/locations/global/publishers/google/models/"
         "gemini-2.0-flash-001:generateContent", "gemini-2.0-flash-001", False),
        ("/v1beta1/publishers/google/models/gemini-2.5-pro:countTokens", "gemini-2.5-pro", False),
    ],
)  # fmt: skip
def test_google_model_and_stream_come_from_path(path: str, model: str, stream: bool) -> None:
    body = {"contents": [{"parts": [{"text": "Hi"}]}], "stream": not stream, "model": "other"}
    for adapter in (GEMINI, VERTEX):
        prompt = adapter.parse_request(path, body)
        assert (prompt.model, prompt.stream) == (model, stream)
        assert adapter.is_stream_request(path, body) is stream
        assert adapter.is_stream_request(path, None) is stream


def test_google_body_model_is_only_a_fallback() -> None:
    body = {"model": "models/gemini-2.0-flash", "contents": []}
    assert GEMINI.parse_request("/v1beta/models", body).model == "gemini-2.0-flash"
    assert GEMINI.parse_request("/v1beta/models", {"contents": []}).model is None
    assert GEMINI.add_stream_usage_option(b"{}", {"stream": True}) is None


def test_parse_request_tolerates_junk() -> None:
    junk: list[Any] = [None, [], "x", {"messages": "x"}, {"messages": [None, 3, {"content": 5}]},
                       {"contents": [{"parts": None}, {"parts": [None, {"text": 3}]}]},
                       {"system": [None, {"type": "text"}]}]  # fmt: skip
    for provider in PROVIDERS:
        for body in junk:
            prompt = adapter_for(provider).parse_request("/", body)
            assert prompt.texts == [] and prompt.max_output_tokens is None


# ------------------------------------------------------------ add_stream_usage_option


def add_option(body: bytes) -> bytes | None:
    return OPENAI.add_stream_usage_option(body, json.loads(body))


def test_usage_option_inserted_without_reserialising() -> None:
    body = '{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"héllo 日本"}]}'
    raw = body.encode()
    out = add_option(raw)
    assert out == b'{"stream_options":{"include_usage":true},' + raw[1:]
    parsed = json.loads(out)
    assert parsed == {**json.loads(raw), "stream_options": {"include_usage": True}}
    assert AZURE.add_stream_usage_option(raw, json.loads(raw)) == out


def test_usage_option_inserted_into_pretty_body() -> None:
    raw = b'\n  {\n  "stream": true,\n  "model": "gpt-4o",\n  "messages": []\n}\n'
    out = add_option(raw)
    assert out is not None and out.endswith(raw[4:])
    assert json.loads(out) == {"stream": True, "model": "gpt-4o", "messages": [],
                               "stream_options": {"include_usage": True}}  # fmt: skip


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, {"include_usage": True}),
        ({"include_usage": False}, {"include_usage": True}),
        ({"include_obfuscation": False}, {"include_obfuscation": False, "include_usage": True}),
        (None, {"include_usage": True}),
    ],
)
def test_usage_option_reserialised_when_stream_options_present(
    options: dict[str, Any] | None, expected: dict[str, Any]
) -> None:
    original = {"model": "gpt-4o", "stream": True, "stream_options": options,
                "messages": [{"role": "user", "content": "é"}], "temperature": 0.7}  # fmt: skip
    out = add_option(json.dumps(original).encode())
    assert out is not None
    parsed = json.loads(out)
    assert parsed == {**original, "stream_options": expected}
    assert list(parsed) == list(original)


@pytest.mark.parametrize(
    "body",
    [
        {"stream": True, "stream_options": {"include_usage": True}},
        {"stream": True, "stream_options": {"include_usage": True, "x": 1}},
        {"stream": False},
        {"stream": False, "stream_options": {"include_usage": False}},
        {"model": "gpt-4o"},
        {"stream": "true"},
        {"stream": True, "stream_options": "yes"},
    ],
)
def test_usage_option_not_needed(body: dict[str, Any]) -> None:
    assert add_option(json.dumps(body).encode()) is None


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=10,
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    extra=st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=6),
    options=st.none() | st.just({}) | st.dictionaries(st.sampled_from(["include_usage", "x"]),
                                                       st.booleans(), max_size=2),
    pretty=st.booleans(),
)  # fmt: skip
def test_usage_option_keeps_every_key(
    extra: dict[str, Any], options: dict[str, Any] | None, pretty: bool
) -> None:
    original: dict[str, Any] = {**extra, "stream": True}
    if options is not None:
        original["stream_options"] = options
    raw = json.dumps(original, indent=2 if pretty else None, ensure_ascii=pretty).encode()
    out = add_option(raw)
    if isinstance(options, dict) and options.get("include_usage") is True:
        assert out is None
        return
    assert out is not None
    want = {**(options or {}), "include_usage": True}
    assert json.loads(out) == {**original, "stream_options": want}


# --------------------------------------------------------------- usage-only chunks, merge


def test_is_usage_only_chunk() -> None:
    raw = (GOLDEN / "azure_text_stream.sse").read_text()
    events = [block[len("data: ") :] for block in raw.split("\n\n") if block]
    flags = [AZURE.is_usage_only_chunk(data) for data in events]
    assert flags == [False, False, False, False, False, True, False]  # filter, ..., usage, DONE
    assert not OPENAI.is_usage_only_chunk('{"choices":[],"usage":null}')
    assert OPENAI.is_usage_only_chunk('{"choices": [], "usage": {"total_tokens": 3}}')
    for adapter in (ANTHROPIC, GEMINI):
        assert not adapter.is_usage_only_chunk(events[5])


def test_openai_and_google_merge_take_latest_reported() -> None:
    for adapter in (OPENAI, GEMINI, VERTEX):
        first = Usage(input_tokens=8, total_tokens=8)
        merged = adapter.merge_usage(first, Usage(input_tokens=8, output_tokens=5, total_tokens=13))
        assert merged == Usage(8, 5, 13)
        assert adapter.merge_usage(merged, Usage()) == merged  # trafficType-only adds nothing
        assert merged == Usage(8, 5, 13)  # inputs are not mutated
        assert first == Usage(input_tokens=8, total_tokens=8)


def test_anthropic_merge_keeps_input_and_takes_cumulative_output() -> None:
    start = ANTHROPIC.stream_delta(
        '{"type":"message_start","message":{"usage":{"input_tokens":21,'
        '"cache_creation_input_tokens":100,"cache_read_input_tokens":2048,"output_tokens":1}}}',
        "message_start",
    ).usage
    assert start == Usage(2169, 1, 2170, 2048, cache_write_input_tokens=100)
    acc = ANTHROPIC.merge_usage(Usage(), start)
    # a repeat of input_tokens without the cache fields must not shrink the input count
    partial = ANTHROPIC.stream_delta(
        '{"type":"message_delta","delta":{},"usage":{"input_tokens":21,"output_tokens":10}}',
        "message_delta",
    ).usage
    assert partial is not None
    acc = ANTHROPIC.merge_usage(acc, partial)
    assert acc == Usage(2169, 10, 2179, 2048, cache_write_input_tokens=100)
    final = ANTHROPIC.stream_delta(
        '{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":42}}',
        "message_delta",
    ).usage
    assert final is not None
    assert ANTHROPIC.merge_usage(acc, final) == Usage(2169, 42, 2211, 2048,
                                                     cache_write_input_tokens=100)


def test_read_request_parses_one_body_once_per_exchange() -> None:
    from extproc.providers import adapter_for, read_request
    adapter, memo = adapter_for("openai"), {}
    body = b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'
    first = read_request(adapter, "/v1/chat/completions", body, memo)
    assert first is not None
    assert read_request(adapter, "/v1/chat/completions", body, memo) is first
    changed = body.replace(b"hi", b"yo")                 # a policy rewrote the body
    again = read_request(adapter, "/v1/chat/completions", changed, memo)
    assert again is not None and again is not first
    assert again[1].texts == [("user", "yo")]


@pytest.mark.parametrize(("adapter", "path", "body", "body_key"), [
    (OPENAI, "/v1/chat/completions", OPENAI_BODY, "messages"),
    (ANTHROPIC, "/v1/messages", ANTHROPIC_BODY, "messages"),
    (GEMINI, "/v1beta/models/gemini-2.5-flash:generateContent", GEMINI_BODY, "contents"),
], ids=["openai", "anthropic", "gemini"])
def test_prompt_texts_are_collected_on_first_use_only(adapter: Any, path: str,
                                                      body: dict[str, Any],
                                                      body_key: str) -> None:
    """Metering alone never reads the prompt text, so parsing does not collect it; the
    first read does, once, from the body as it was parsed."""
    doc = json.loads(json.dumps(body))
    expected = adapter.parse_request(path, json.loads(json.dumps(body))).texts
    prompt = adapter.parse_request(path, doc)
    assert callable(prompt._texts), "the texts were collected at parse time"
    assert expected and prompt.texts == expected
    doc[body_key] = []  # later changes to the body do not change texts already read
    assert prompt.texts == expected


def test_each_reply_a_request_asks_for_counts_in_its_output() -> None:
    """n, best_of and candidateCount multiply what a request may generate (a budget reserves
    max output tokens for each); anything odd reads as one."""
    from extproc.providers import adapter_for
    from extproc.providers.openai_legacy import OpenAICompletionsAdapter

    chat, gemini = adapter_for("openai"), adapter_for("gemini")
    assert chat.output_choices({"n": 50}) == 50
    assert chat.output_choices({"n": "50"}) == chat.output_choices({"n": -3}) == 1
    assert OpenAICompletionsAdapter("openai").output_choices({"n": 10, "best_of": 20}) == 20
    assert gemini.output_choices({"generationConfig": {"candidateCount": 8}}) == 8
    assert gemini.output_choices({"generation_config": {"candidate_count": 3}}) == 3
    assert adapter_for("anthropic").output_choices({"n": 9}) == 1


def test_google_reads_a_lone_object_where_a_list_goes() -> None:
    """Google's JSON parser takes one object for a repeated field, as its own examples send
    `"parts": {"text": ...}`: the guards read it too (the probe found it passed unread)."""
    from extproc.providers import adapter_for

    body = {"system_instruction": {"parts": {"text": "sys"}},
            "contents": {"role": "user", "parts": {"text": "hello"}}}
    texts = adapter_for("gemini").parse_request("/v1beta/models/m:generateContent", body).texts
    assert texts == [("system", "sys"), ("user", "hello")]


_MESSAGE_VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=4),
                            st.lists(st.text(max_size=3), max_size=2),
                            st.dictionaries(st.sampled_from(["type", "text", "x"]),
                                            st.text(max_size=3), max_size=2))


@settings(max_examples=400)
@given(message=st.dictionaries(st.sampled_from(["role", "content", "name", "refusal",
                                                "tool_calls", "audio", "extra"]),
                               _MESSAGE_VALUES, max_size=5)
       | st.builds(lambda usual, other: {**usual, **other},   # the usual shape, or near it
                   st.fixed_dictionaries({"content": st.text(max_size=4)},
                                         optional={"role": _MESSAGE_VALUES,
                                                   "name": _MESSAGE_VALUES}),
                   st.dictionaries(st.sampled_from(["refusal", "reasoning_content",
                                                    "reasoning", "tool_calls",
                                                    "function_call", "audio", "extra"]),
                                   _MESSAGE_VALUES, max_size=1)),
       inputs=st.booleans())
def test_the_usual_message_is_read_at_once_as_field_by_field(message: dict[str, Any],
                                                             inputs: bool) -> None:
    """`message_slots` reads a message of only role, content (a string) and name at once;
    what it finds is what the field-by-field reading finds, in any message."""
    def seen(slots: Any) -> list[tuple[Any, ...]]:   # holders by identity, markers by kind
        return [(r, h.kind if isinstance(h, Unread) else id(h), k) for r, h, k in slots]

    role = lower_role(message.get("role"))
    whole = seen(all_message_slots(message, _ROLES.get(role, role), inputs))
    assert seen(message_slots(message, inputs)) == whole


_PART_VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=4),
                         st.dictionaries(st.sampled_from(["mimeType", "data", "args", "x"]),
                                         st.text(max_size=3), max_size=2))


def _seen(slots: Any) -> list[tuple[Any, ...]]:
    return [(r, h.kind if isinstance(h, Unread) else id(h), k) for r, h, k in slots]


@settings(max_examples=400)
@given(part=st.dictionaries(st.sampled_from(["text", "thought", "thoughtSignature",
                                             "inlineData", "functionCall", "newKind"]),
                            _PART_VALUES, max_size=4)
       | st.fixed_dictionaries({"text": st.text(max_size=4)},   # the usual part
                               optional={"thought": _PART_VALUES,
                                         "thought_signature": _PART_VALUES}),
       inputs=st.booleans())
def test_the_usual_gemini_part_is_read_at_once_as_field_by_field(part: dict[str, Any],
                                                                 inputs: bool) -> None:
    from extproc.providers.google_prompts import all_part_slots, content_part_slots
    assert _seen(content_part_slots(part, "user", inputs)) == _seen(
        all_part_slots(part, "user", inputs))


@settings(max_examples=400)
@given(block=st.dictionaries(st.sampled_from(["type", "text", "citations", "input",
                                              "source", "content"]),
                             _PART_VALUES | st.sampled_from(["text", "tool_use", "image",
                                                             "thinking"]), max_size=4)
       | st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=4)},
                               optional={"cache_control": _PART_VALUES}),
       depth=st.integers(0, 9), inputs=st.booleans())
def test_the_usual_anthropic_block_is_read_at_once_as_field_by_field(
        block: dict[str, Any], depth: int, inputs: bool) -> None:
    from extproc.providers.anthropic_prompts import _MAX_DEPTH, _block_slots, _blocks_slots
    holder = {"content": [block]}
    whole = [("user", holder["content"], 0)] if depth >= _MAX_DEPTH else list(
        _block_slots(block, "user", depth, inputs))
    assert _seen(_blocks_slots(holder, "content", "user", depth, inputs)) == _seen(whole)
