"""Provider adapters rewriting texts in place: rewrite_request_texts and rewrite_response_texts
visit exactly what parse_request / response_texts read (same roles, same order), store the
results where the texts came from, touch nothing else, and leave the body alone (returning
False) when fn changes nothing; the "text" kind of response_texts is what parse_response
reads as visible text. Realistic bodies and the golden replies are checked field by
field; hypothesis checks the mirror on random, partly malformed bodies."""

from __future__ import annotations

import copy
import json
import random
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.codecs.jsontext import JsonSource
from extproc.guards.scanner import Scanner, builtin
from extproc.providers import (
    PROVIDERS,
    Adapter,
    adapter_for,
    anthropic_prompts,
    google_prompts,
    openai_prompts,
)
from extproc.providers.values import (
    MaskingFn,
    dump_compact,
    rewrite_arguments,
    rewrite_json_strings,
)

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
OPENAI = adapter_for("openai")
AZURE = adapter_for("azure")
ANTHROPIC = adapter_for("anthropic")
GEMINI = adapter_for("gemini")
VERTEX = adapter_for("vertex")

JsonPath = tuple[str | int, ...]


def upper(role: str, text: str) -> str:
    return text.upper()


def leaves(value: Any, path: JsonPath = ()) -> Iterator[tuple[JsonPath, Any]]:
    """(path, value) of every scalar in a JSON value, in serialisation order."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, (*path, index))
    else:
        yield path, value


def changed_strings(before: Any, after: Any) -> dict[JsonPath, tuple[str, str]]:
    """The string leaves that differ, after checking that nothing else did: same keys in the
    same order, same list lengths, same non-string values (and types)."""
    old, new = list(leaves(before)), list(leaves(after))
    assert [p for p, _ in old] == [p for p, _ in new]
    changed: dict[JsonPath, tuple[str, str]] = {}
    for (path, a), (_, b) in zip(old, new, strict=True):
        assert type(a) is type(b), path
        if a != b:
            assert isinstance(a, str), path
            changed[path] = (a, b)
    return changed


def upper_strings(value: Any) -> Any:
    """``value`` with every string value (not key) upper-cased."""
    if isinstance(value, str):
        return value.upper()
    if isinstance(value, dict):
        return {key: upper_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [upper_strings(item) for item in value]
    return value


def bracket_strings(value: Any) -> Any:
    """``value`` with every string value (not key) put in angle brackets."""
    if isinstance(value, str):
        return f"<{value}>"
    if isinstance(value, dict):
        return {key: bracket_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [bracket_strings(item) for item in value]
    return value


def upper_json(text: str) -> str:
    """The compact dump of a JSON object after upper-casing its string values."""
    return dump_compact(upper_strings(json.loads(text)))


def check_request_rewrite(adapter: Adapter, path: str, original: dict[str, Any],
                          after_texts: list[tuple[str, str]], text_paths: set[JsonPath]) -> None:
    """Upper-casing rewrites exactly ``text_paths`` and parse_request then reads
    ``after_texts``; an identity fn changes nothing and writes nothing."""
    body = copy.deepcopy(original)
    before_texts = adapter.parse_request(path, body).texts
    assert len(before_texts) == len(after_texts)
    for (role, old), (new_role, new) in zip(before_texts, after_texts, strict=True):
        # a string is upper-cased whole; an object value (tool input, arguments, a tool's
        # schema) has its string values upper-cased
        assert new_role == role
        assert new == old.upper() or (role in ("tool", "system") and new == upper_json(old))
    assert adapter.rewrite_request_texts(path, body, upper) is True
    assert adapter.parse_request(path, body).texts == after_texts
    changed = changed_strings(original, body)
    assert set(changed) == text_paths
    assert all(new == old.upper() for old, new in changed.values())
    prompt, again = adapter.parse_request(path, original), adapter.parse_request(path, body)
    assert (prompt.model, prompt.stream, prompt.max_output_tokens) == (
        again.model, again.stream, again.max_output_tokens)  # fmt: skip
    check_identity(lambda b, f: adapter.rewrite_request_texts(path, b, f), original)


def check_identity(rewrite: Callable[[Any, Callable[..., str]], bool], original: Any) -> None:
    """Identity rewrites (even with an equal but distinct string) return False, write nothing."""
    for same in (lambda *args: args[-1], lambda *args: "".join(list(args[-1]))):
        body = copy.deepcopy(original)
        ids = [(p, id(v)) for p, v in leaves(body)]
        assert rewrite(body, same) is False
        assert body == original
        assert [(p, id(v)) for p, v in leaves(body)] == ids  # the very same objects


# ---------------------------------------------------------------------------- OpenAI

OPENAI_PATH = "/v1/chat/completions"
OPENAI_BODY: dict[str, Any] = {
    "model": "gpt-4o",
    "stream": True,
    "max_completion_tokens": 300,
    "tools": [{"type": "function", "function": {"name": "lookup", "description": "find things",
               "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}],
    "messages": [
        {"role": "developer", "content": "be terse."},
        {"role": "system", "content": [{"type": "text", "text": "answer in french."}]},
        {"role": "user", "name": "alice", "content": [
            {"type": "text", "text": "what is in this image? mail bob@x.org"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,ivborw0k",
                                                "detail": "low"}},
            {"type": "input_audio", "input_audio": {"data": "uklgriq", "format": "wav"}},
            {"type": "file", "file": {"file_id": "file-abc", "filename": "a.pdf"}},
            {"type": "input_text", "text": "and this one?"},
            "a bare string part",
        ]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "lookup", "arguments": '{"q":"cat"}'}},
            {"id": "call_2", "type": "function",
             "function": {"name": "lookup", "arguments": '{"q": "dog", "n": 2}'}},
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "a cat."},
        {"role": "tool", "tool_call_id": "call_2",
         "content": [{"type": "text", "text": "a dog."}]},
        {"role": "assistant", "content": [{"type": "output_text", "text": "here:"},
                                          {"type": "refusal", "refusal": "i can't."}]},
        {"role": "assistant", "content": "partly", "refusal": "no."},
        {"role": "assistant", "content": None, "refusal": ""},
        {"role": "assistant", "content": None,
         "function_call": {"name": "old", "arguments": '{"city":"paris"}'}},
        {"role": "function", "name": "old", "content": "legacy result"},
        {"role": "user", "content": "merci ✓ é"},
    ],
}  # fmt: skip

OPENAI_AFTER = [
    ("system", "FIND THINGS"),  # tool definitions first: description, then the schema
    ("system", '{"type":"OBJECT","properties":{"q":{"type":"STRING"}}}'),
    ("system", "BE TERSE."),
    ("system", "ANSWER IN FRENCH."),
    ("user", "ALICE"),  # a message's name
    ("user", "WHAT IS IN THIS IMAGE? MAIL BOB@X.ORG"),
    ("user", "A.PDF"),  # a file's name: the model reads it with the file
    ("user", "AND THIS ONE?"),
    ("user", "A BARE STRING PART"),
    ("tool", '{"Q":"CAT"}'),  # a JSON string is one text, rewritten whole
    ("tool", '{"Q": "DOG", "N": 2}'),
    ("tool", "A CAT."),
    ("tool", "A DOG."),
    ("assistant", "HERE:"),
    ("assistant", "I CAN'T."),
    ("assistant", "PARTLY"),
    ("assistant", "NO."),
    ("tool", '{"CITY":"PARIS"}'),
    ("tool", "OLD"),
    ("tool", "LEGACY RESULT"),
    ("user", "MERCI ✓ É"),
]

OPENAI_TEXT_PATHS: set[JsonPath] = {
    ("tools", 0, "function", "description"),
    ("tools", 0, "function", "parameters", "type"),
    ("tools", 0, "function", "parameters", "properties", "q", "type"),
    ("messages", 2, "name"),
    ("messages", 10, "name"),
    ("messages", 0, "content"),
    ("messages", 1, "content", 0, "text"),
    ("messages", 2, "content", 0, "text"),
    ("messages", 2, "content", 3, "file", "filename"),
    ("messages", 2, "content", 4, "text"),
    ("messages", 2, "content", 5),
    ("messages", 3, "tool_calls", 0, "function", "arguments"),
    ("messages", 3, "tool_calls", 1, "function", "arguments"),
    ("messages", 4, "content"),
    ("messages", 5, "content", 0, "text"),
    ("messages", 6, "content", 0, "text"),
    ("messages", 6, "content", 1, "refusal"),
    ("messages", 7, "content"),
    ("messages", 7, "refusal"),
    ("messages", 9, "function_call", "arguments"),
    ("messages", 10, "content"),
    ("messages", 11, "content"),
}


@pytest.mark.parametrize(
    ("adapter", "path"),
    [(OPENAI, OPENAI_PATH), (OPENAI, "/openai/v1/chat/completions"),
     (AZURE, "/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21")],
)  # fmt: skip
def test_openai_request_rewrite_every_text_location(adapter: Adapter, path: str) -> None:
    check_request_rewrite(adapter, path, OPENAI_BODY, OPENAI_AFTER, OPENAI_TEXT_PATHS)


def test_openai_calls_fn_with_parse_request_roles_and_order() -> None:
    body = copy.deepcopy(OPENAI_BODY)
    calls: list[tuple[str, str]] = []
    OPENAI.rewrite_request_texts(OPENAI_PATH, body, lambda r, t: calls.append((r, t)) or t)
    # every text but the tool's schema (an object: its string values one by one) is a string
    texts = OPENAI.parse_request(OPENAI_PATH, OPENAI_BODY).texts
    assert texts[1] == ("system", '{"type":"object","properties":{"q":{"type":"string"}}}')
    assert calls == [texts[0], ("system", "object"), ("system", "string"), *texts[2:]]


def test_openai_non_string_arguments_rewritten_value_by_value() -> None:
    body = {"messages": [{"role": "assistant", "tool_calls": [
        {"function": {"name": "f", "arguments": {"q": "cat", "n": 1, "tags": ["x", None]}}}]}]}
    texts = [("tool", '{"q":"cat","n":1,"tags":["x",null]}')]
    assert OPENAI.parse_request("/", body).texts == texts
    assert OPENAI.rewrite_request_texts("/", body, upper)
    assert body["messages"][0]["tool_calls"][0]["function"]["arguments"] == {
        "q": "CAT", "n": 1, "tags": ["X", None]}  # fmt: skip


# ------------------------------------------------------------------------- Anthropic

ANTHROPIC_PATH = "/v1/messages"
ANTHROPIC_BODY: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 1024,
    "system": [
        {"type": "text", "text": "you are helpful.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "be brief."},
    ],
    "tools": [{"name": "search", "description": "web search",
               "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}}}],
    "messages": [
        {"role": "user", "content": "hello, i'm carol@example.com"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "hmm, weather", "signature": "eqqbcgiy"},
            {"type": "redacted_thinking", "data": "emwkahgbegy3va3pzix"},
            {"type": "text", "text": "let me check."},
            {"type": "tool_use", "id": "toolu_1", "name": "search",
             "input": {"query": "météo", "days": 3, "where": {"city": "paris", "zip": None},
                       "tags": ["rain", 7, "wind"]}},
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search",
             "input": {"query": "paris forecast"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": False, "content": [
                {"type": "text", "text": "rain later"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                             "data": "ivborw0k"}},
                {"type": "text", "text": "wind 20 km/h"},
            ]},
            {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
            {"type": "text", "text": "summarise please."},
            {"type": "document", "title": "notes", "source": {
                "type": "text", "media_type": "text/plain", "data": "doc body."}},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                            "data": "jvberi0x"}},
            {"type": "document", "source": {"type": "content", "content": [
                {"type": "text", "text": "chunk one"},
                {"type": "image", "source": {"type": "url", "url": "https://x.test/b.png"}},
                {"type": "text", "text": "chunk two"},
            ]}},
            {"type": "document", "source": {"type": "content", "content": "chunk string"}},
        ]},
    ],
}  # fmt: skip

ANTHROPIC_AFTER = [
    ("system", "YOU ARE HELPFUL."),
    ("system", "BE BRIEF."),
    ("system", "WEB SEARCH"),  # tool definitions: description, then the schema
    ("system", '{"type":"OBJECT","properties":{"query":{"type":"STRING"}}}'),
    ("user", "HELLO, I'M CAROL@EXAMPLE.COM"),
    ("assistant", "HMM, WEATHER"),  # earlier thinking (not redacted thinking)
    ("assistant", "LET ME CHECK."),
    # an object input: string values rewritten, keys and numbers kept
    ("tool", '{"query":"MÉTÉO","days":3,"where":{"city":"PARIS","zip":null},'
             '"tags":["RAIN",7,"WIND"]}'),
    ("tool", '{"query":"PARIS FORECAST"}'),
    ("tool", "SUNNY"),
    ("tool", "RAIN LATER"),
    ("tool", "WIND 20 KM/H"),
    ("user", "SUMMARISE PLEASE."),
    ("user", "NOTES"),  # a document's title
    ("user", "DOC BODY."),
    ("user", "CHUNK ONE"),
    ("user", "CHUNK TWO"),
    ("user", "CHUNK STRING"),
]

ANTHROPIC_TEXT_PATHS: set[JsonPath] = {
    ("system", 0, "text"),
    ("system", 1, "text"),
    ("tools", 0, "description"),
    ("tools", 0, "input_schema", "type"),
    ("tools", 0, "input_schema", "properties", "query", "type"),
    ("messages", 0, "content"),
    ("messages", 1, "content", 0, "thinking"),
    ("messages", 1, "content", 2, "text"),
    ("messages", 1, "content", 3, "input", "query"),
    ("messages", 1, "content", 3, "input", "where", "city"),
    ("messages", 1, "content", 3, "input", "tags", 0),
    ("messages", 1, "content", 3, "input", "tags", 2),
    ("messages", 1, "content", 4, "input", "query"),
    ("messages", 2, "content", 0, "content"),
    ("messages", 2, "content", 1, "content", 0, "text"),
    ("messages", 2, "content", 1, "content", 2, "text"),
    ("messages", 2, "content", 3, "text"),
    ("messages", 2, "content", 4, "title"),
    ("messages", 2, "content", 4, "source", "data"),
    ("messages", 2, "content", 6, "source", "content", 0, "text"),
    ("messages", 2, "content", 6, "source", "content", 2, "text"),
    ("messages", 2, "content", 7, "source", "content"),
}


def test_anthropic_request_rewrite_every_text_location() -> None:
    check_request_rewrite(ANTHROPIC, ANTHROPIC_PATH, ANTHROPIC_BODY, ANTHROPIC_AFTER,
                          ANTHROPIC_TEXT_PATHS)  # fmt: skip


def test_anthropic_system_string() -> None:
    body = {"model": "claude-3-5-haiku-latest", "max_tokens": 5, "system": "short.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}
    check_request_rewrite(ANTHROPIC, "/anthropic/v1/messages", body,
                          [("system", "SHORT."), ("user", "HI")],
                          {("system",), ("messages", 0, "content", 0, "text")})  # fmt: skip


def test_anthropic_tool_input_leaves_get_tool_role_in_order() -> None:
    body = copy.deepcopy(ANTHROPIC_BODY)
    calls: list[tuple[str, str]] = []
    ANTHROPIC.rewrite_request_texts(ANTHROPIC_PATH, body, lambda r, t: calls.append((r, t)) or t)
    assert calls[7:13] == [("assistant", "let me check."), ("tool", "météo"), ("tool", "paris"),
                           ("tool", "rain"), ("tool", "wind"), ("tool", "paris forecast")]


# ---------------------------------------------------------------------- Gemini/Vertex

GEMINI_PATH = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
VERTEX_PATH = ("/v1/projects/my-proj/locations/us-central1/publishers/google/models/"
               "gemini-2.0-flash-001:generateContent")  # fmt: skip
GEMINI_BODY: dict[str, Any] = {
    "systemInstruction": {"parts": [{"text": "you are a poet."}, {"text": "rhyme."}]},
    "tools": [{"functionDeclarations": [
        {"name": "describe", "description": "describe a picture",
         "parameters": {"type": "object", "properties": {"detail": {"type": "string"}}}}]},
        {"googleSearch": {}}],
    "contents": [
        {"role": "user", "parts": [
            {"text": "write about"},
            {"inlineData": {"mimeType": "image/png", "data": "ivborw0k"}},
            {"fileData": {"mimeType": "video/mp4", "fileUri": "gs://b/v.mp4"}},
            {"text": "this picture, call dave on +1 555 0100"},
        ]},
        {"role": "model", "parts": [
            {"text": "considering the image...", "thought": True},
            {"text": "i'll describe it."},
            {"functionCall": {"name": "describe", "args": {"detail": "high", "max": 3,
                                                          "aspects": ["colour", "mood"]}},
             "thoughtSignature": "ciqb0e2k"},
        ]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "describe", "response": {"caption": "a cat",
                                                                   "score": 0.5}}},
        ]},
        {"parts": [{"text": "no role means user"}]},
        "a bare string content",
    ],
    "generationConfig": {"maxOutputTokens": 512, "temperature": 0.2,
                         "responseMimeType": "text/plain"},
    "safetySettings": [{"category": "harm_category_hate_speech", "threshold": "block_none"}],
}  # fmt: skip

GEMINI_AFTER = [
    ("system", "YOU ARE A POET."),
    ("system", "RHYME."),
    ("system", "DESCRIBE A PICTURE"),  # tool declarations: description, then the schema
    ("system", '{"type":"OBJECT","properties":{"detail":{"type":"STRING"}}}'),
    ("user", "WRITE ABOUT"),
    ("user", "THIS PICTURE, CALL DAVE ON +1 555 0100"),
    ("assistant", "CONSIDERING THE IMAGE..."),  # earlier thought parts
    ("assistant", "I'LL DESCRIBE IT."),
    ("tool", '{"detail":"HIGH","max":3,"aspects":["COLOUR","MOOD"]}'),
    ("tool", '{"caption":"A CAT","score":0.5}'),
    ("user", "NO ROLE MEANS USER"),
    ("user", "A BARE STRING CONTENT"),
]

GEMINI_TEXT_PATHS: set[JsonPath] = {
    ("systemInstruction", "parts", 0, "text"),
    ("systemInstruction", "parts", 1, "text"),
    ("tools", 0, "functionDeclarations", 0, "description"),
    ("tools", 0, "functionDeclarations", 0, "parameters", "type"),
    ("tools", 0, "functionDeclarations", 0, "parameters", "properties", "detail", "type"),
    ("contents", 0, "parts", 0, "text"),
    ("contents", 1, "parts", 0, "text"),
    ("contents", 0, "parts", 3, "text"),
    ("contents", 1, "parts", 1, "text"),
    ("contents", 1, "parts", 2, "functionCall", "args", "detail"),
    ("contents", 1, "parts", 2, "functionCall", "args", "aspects", 0),
    ("contents", 1, "parts", 2, "functionCall", "args", "aspects", 1),
    ("contents", 2, "parts", 0, "functionResponse", "response", "caption"),
    ("contents", 3, "parts", 0, "text"),
    ("contents", 4),
}

SNAKE = [("systemInstruction", "system_instruction"), ("functionCall", "function_call"),
         ("functionResponse", "function_response"), ("generationConfig", "generation_config"),
         ("maxOutputTokens", "max_output_tokens"), ("inlineData", "inline_data"),
         ("functionDeclarations", "function_declarations")]  # fmt: skip


def snake_case(body: dict[str, Any]) -> dict[str, Any]:
    """The same request in proto (snake_case) field names, which Google also accepts."""
    text = json.dumps(body)
    for camel, snake in SNAKE:
        text = text.replace(f'"{camel}"', f'"{snake}"')
    return json.loads(text)


def snake_path(path: JsonPath) -> JsonPath:
    names = dict(SNAKE)
    return tuple(names.get(p, p) if isinstance(p, str) else p for p in path)


@pytest.mark.parametrize("form", ["camelCase", "snake_case"])
@pytest.mark.parametrize(("adapter", "path"), [(GEMINI, GEMINI_PATH), (VERTEX, VERTEX_PATH)])
def test_google_request_rewrite_every_text_location(adapter: Adapter, path: str,
                                                    form: str) -> None:
    body, paths = GEMINI_BODY, GEMINI_TEXT_PATHS
    if form == "snake_case":
        body, paths = snake_case(body), {snake_path(p) for p in paths}
    check_request_rewrite(adapter, path, body, GEMINI_AFTER, paths)


@pytest.mark.parametrize("system", ["plain string.", {"role": "system", "parts": [
    {"text": "plain string."}]}, {"parts": [{"text": "plain string."}]}])  # fmt: skip
def test_google_system_instruction_forms(system: Any) -> None:
    body = {"systemInstruction": system, "contents": [{"parts": [{"text": "hi"}]}]}
    key: JsonPath = ("systemInstruction",) if isinstance(system, str) else (
        "systemInstruction", "parts", 0, "text")  # fmt: skip
    check_request_rewrite(GEMINI, "/v1beta/models/gemini-2.0-flash:generateContent", body,
                          [("system", "PLAIN STRING."), ("user", "HI")],
                          {key, ("contents", 0, "parts", 0, "text")})  # fmt: skip


def test_google_both_spellings_are_read() -> None:
    # Google may take either spelling when both are sent: both are read and rewritten,
    # camelCase first; a null field is skipped.
    body = {"systemInstruction": {"parts": [{"text": "camel"}]},
            "system_instruction": {"parts": [{"text": "snake"}]},
            "contents": [{"parts": [{"functionCall": {"args": {"a": "camel"}},
                                     "function_call": {"args": {"a": "snake"}}},
                                    {"functionCall": None,
                                     "function_call": {"args": {"a": "fallback"}}}]}]}
    check_request_rewrite(GEMINI, "/", body,
                          [("system", "CAMEL"), ("system", "SNAKE"), ("tool", '{"a":"CAMEL"}'),
                           ("tool", '{"a":"SNAKE"}'), ("tool", '{"a":"FALLBACK"}')],
                          {("systemInstruction", "parts", 0, "text"),
                           ("system_instruction", "parts", 0, "text"),
                           ("contents", 0, "parts", 0, "functionCall", "args", "a"),
                           ("contents", 0, "parts", 0, "function_call", "args", "a"),
                           ("contents", 0, "parts", 1, "function_call", "args", "a")})  # fmt: skip


def test_rewrite_tolerates_junk() -> None:
    junk: list[Any] = [None, [], "x", 3, {"messages": "x"},
                       {"messages": [None, 3, {"content": 5}, {"content": [None, 7]}]},
                       {"contents": [{"parts": None}, {"parts": [None, {"text": 3}]}, None]},
                       {"contents": "x", "systemInstruction": 4},
                       {"system": [None, {"type": "text"}, {"type": "document"}]},
                       {"choices": [None, {"message": None}, {"message": {"content": 1}}]},
                       {"candidates": [None, {"content": {"parts": "x"}}]},
                       {"content": [None, {"type": "text", "text": None}]}]  # fmt: skip
    for provider in PROVIDERS:
        adapter = adapter_for(provider)
        for body in junk:
            before = copy.deepcopy(body)
            assert adapter.rewrite_request_texts("/", body, upper) is False
            assert adapter.rewrite_response_texts(body, str.upper) is False
            assert body == before


def test_cyclic_tool_input_does_not_loop() -> None:
    loop: dict[str, Any] = {"q": "cat"}
    loop["self"] = loop
    body = {"messages": [{"role": "assistant", "content": [
        {"type": "tool_use", "input": loop}]}]}  # fmt: skip
    assert ANTHROPIC.parse_request("/", body).texts == [("tool", "")]  # cannot be dumped
    assert ANTHROPIC.rewrite_request_texts("/", body, upper)
    assert loop["q"] == "CAT" and loop["self"] is loop


def test_masking_with_a_scanner_and_reserialising() -> None:
    scanner = Scanner(builtin(["email", "phone"]))
    body = copy.deepcopy(ANTHROPIC_BODY)
    assert ANTHROPIC.rewrite_request_texts(ANTHROPIC_PATH, body, lambda r, t: scanner.mask(t))
    wire = json.dumps(body, ensure_ascii=False)
    assert "carol@example.com" not in wire and "toolu_1" in wire and "ivborw0k" in wire
    masked = scanner.mask("hello, i'm carol@example.com")
    assert masked != "hello, i'm carol@example.com"
    assert ANTHROPIC.parse_request(ANTHROPIC_PATH, json.loads(wire)).texts[4] == ("user", masked)
    assert changed_strings(ANTHROPIC_BODY, body) == {
        ("messages", 0, "content"): ("hello, i'm carol@example.com", masked)}


# ------------------------------------------------------------------------ responses

# every text the model wrote: visible text, and thinking, tool-call arguments and the calls'
# names too
GOLDEN_RESPONSES: list[tuple[str, str, set[JsonPath]]] = [
    ("openai", "openai_response.json", {("choices", 0, "message", "content")}),
    ("openai", "openai_tool_call_response.json", {
        ("choices", 0, "message", "tool_calls", 0, "function", "name"),
        ("choices", 0, "message", "tool_calls", 0, "function", "arguments")}),
    ("azure", "azure_response.json", {("choices", 0, "message", "content")}),
    ("anthropic", "anthropic_response.json", {("content", 0, "thinking"), ("content", 1, "text"),
                                              ("content", 2, "name"),
                                              ("content", 2, "input", "location"),
                                              ("content", 2, "input", "unit")}),
    ("gemini", "gemini_response.json", {("candidates", 0, "content", "parts", 0, "text"),
                                        ("candidates", 0, "content", "parts", 1, "text"),
                                        ("candidates", 0, "content", "parts", 2, "text")}),
    ("gemini", "gemini_blocked_response.json", set()),
    ("vertex", "vertex_response.json", {("candidates", 0, "content", "parts", 0, "text")}),
]  # fmt: skip


@pytest.mark.parametrize(("provider", "name", "text_paths"), GOLDEN_RESPONSES,
                         ids=[name for _, name, _ in GOLDEN_RESPONSES])  # fmt: skip
def test_golden_response_rewrite(provider: str, name: str, text_paths: set[JsonPath]) -> None:
    adapter = adapter_for(provider)
    original = json.loads((GOLDEN / name).read_text())
    body = copy.deepcopy(original)
    text, finish, usage = adapter.parse_response(body)
    assert adapter.rewrite_response_texts(body, str.upper) is bool(text_paths)
    assert adapter.parse_response(body) == (text.upper(), finish, usage)
    changed = changed_strings(original, body)
    assert set(changed) == text_paths
    assert all(new == old.upper() for old, new in changed.values())
    check_identity(adapter.rewrite_response_texts, original)


def test_openai_response_every_choice_and_part_shape() -> None:
    original = {"id": "chatcmpl-x", "model": "gpt-4o", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": [
            {"type": "text", "text": "part one, "}, {"type": "image_url", "image_url": {
                "url": "https://x.test/i.png"}}, {"type": "text", "text": "part two"}],
            "refusal": " sorry", "tool_calls": [{"id": "call_1", "function": {
                "name": "f", "arguments": '{"a":"b"}'}}]}, "finish_reason": "stop"},
        {"index": 1, "message": {"role": "assistant", "content": "second choice"},
         "finish_reason": "length"},
    ]}  # fmt: skip
    body = copy.deepcopy(original)
    assert OPENAI.parse_response(body)[0] == "part one, part two sorry"
    assert OPENAI.rewrite_response_texts(body, str.upper)
    assert OPENAI.parse_response(body)[0] == "PART ONE, PART TWO SORRY"
    assert set(changed_strings(original, body)) == {
        ("choices", 0, "message", "content", 0, "text"),
        ("choices", 0, "message", "content", 2, "text"),
        ("choices", 0, "message", "refusal"),
        ("choices", 0, "message", "tool_calls", 0, "function", "name"),
        ("choices", 0, "message", "tool_calls", 0, "function", "arguments"),
        ("choices", 1, "message", "content"),  # parse_response reads choice 0 only
    }


def test_gemini_buffered_array_response() -> None:
    original = json.loads((GOLDEN / "gemini_array_stream.json").read_text())
    body = copy.deepcopy(original)
    text, finish, usage = GEMINI.parse_response(body)
    assert text and GEMINI.rewrite_response_texts(body, str.upper)
    assert GEMINI.parse_response(body) == (text.upper(), finish, usage)
    assert all(new == old.upper() for old, new in changed_strings(original, body).values())


# --------------------------------------------------------------- random bodies (mirror)

# Texts that are never JSON (no digit, quote, brace, bracket, "-", t/f/n start), so a text read
# from an object value (a compact dump that parses as a container) is told apart from a string.
ALPHABET = "abcxyzé✓ <>@.,\\\n"
Make = Callable[[], Any]


class Junky:
    """Random bodies in one provider's shapes, about one value in ten ill-typed, every field
    present four times in five, fields in random order (plain hypothesis strategies this deep
    produce almost no text at all)."""

    def __init__(self, rnd: random.Random) -> None:
        self.rnd = rnd

    def text(self) -> str:
        return "".join(self.rnd.choice(ALPHABET) for _ in range(self.rnd.randint(0, 6)))

    def chance(self, p: float) -> bool:
        return self.rnd.random() < p

    def odd(self, make: Make) -> Any:
        """make(), or now and then an ill-typed value."""
        if self.chance(0.1):
            return self.rnd.choice([None, True, 0, 2, [], {}, self.text()])
        return make()

    def odd_text(self) -> Any:
        return self.odd(self.text)

    def one_of(self, *names: str) -> Make:
        return lambda: self.odd(lambda: self.rnd.choice(names))

    def many(self, make: Make, most: int = 4) -> Any:
        size = 0 if self.chance(0.1) else self.rnd.randint(1, most)
        return self.odd(lambda: [make() for _ in range(size)])

    def obj(self, **fields: Make) -> dict[str, Any]:
        names = [name for name in fields if self.chance(0.8)]
        self.rnd.shuffle(names)
        return {name: fields[name]() for name in names}

    def json(self, depth: int = 0) -> Any:
        """A JSON value, strings likeliest (an object value: tool input, args, response)."""
        kind = self.rnd.choice("sssn01lldd" if depth < 3 else "sssn01")
        if kind == "l":
            return [self.json(depth + 1) for _ in range(self.rnd.randint(0, 3))]
        if kind == "d":
            return {self.text(): self.json(depth + 1) for _ in range(self.rnd.randint(0, 3))}
        return {"s": self.text, "n": lambda: None, "0": lambda: self.rnd.randint(-9, 9),
                "1": lambda: self.chance(0.5)}[kind]()


class OpenAIJunk(Junky):
    def part(self) -> Any:
        if self.chance(0.2):
            return self.text()
        return self.odd(lambda: self.obj(
            type=self.one_of("text", "input_text", "output_text", "refusal", "image_url",
                             "input_audio", "file"),
            text=self.odd_text, refusal=self.odd_text,
            image_url=lambda: {"url": self.text()}))  # fmt: skip

    def content(self) -> Any:
        return self.text() if self.chance(0.4) else self.many(self.part)

    def function(self) -> Any:
        return self.odd(lambda: self.obj(
            name=self.text, arguments=lambda: self.text() if self.chance(0.6) else self.json()))

    def message(self, reply: bool = False) -> Any:
        return self.odd(lambda: self.obj(
            role=(lambda: "assistant") if reply else self.one_of(
                "system", "developer", "user", "assistant", "tool", "function", "User",
                "SYSTEM", "Developer", "critic"),
            content=self.content, refusal=self.odd_text, reasoning_content=self.odd_text,
            tool_calls=lambda: self.many(lambda: self.odd(lambda: self.obj(
                id=self.text, type=lambda: "function", function=self.function)), 3),
            function_call=self.function, name=self.odd_text))  # fmt: skip

    def spec(self) -> Any:
        return self.odd(lambda: self.obj(name=self.text, description=self.odd_text,
                                         parameters=self.json))

    def request(self) -> dict[str, Any]:
        tool = lambda: self.odd(lambda: self.obj(  # noqa: E731
            type=self.one_of("function", "custom"), function=self.spec, custom=self.spec))
        return {"model": self.text(), "messages": self.many(self.message, 6),
                **self.obj(stream=lambda: self.chance(0.5), tools=lambda: self.many(tool, 2),
                           functions=lambda: self.many(self.spec, 2))}

    def response(self) -> dict[str, Any]:
        choice = lambda: self.odd(lambda: self.obj(  # noqa: E731
            index=lambda: self.odd(lambda: self.rnd.randint(0, 2)),
            message=lambda: self.message(reply=True), finish_reason=self.text))
        return {"id": self.text(), "choices": self.many(choice, 3)}


class AnthropicJunk(Junky):
    def block(self, depth: int = 0) -> Any:
        nested: Make = lambda: (  # noqa: E731
            self.text() if self.chance(0.4) or depth > 2 else
            self.many(lambda: self.block(depth + 1), 3))
        return self.odd(lambda: self.obj(
            type=self.one_of("text", "text", "text", "document", "document", "image",
                             "thinking", "redacted_thinking", "tool_use", "server_tool_use",
                             "tool_result", "tool_result", "search_result", "mcp_tool_use",
                             "mcp_tool_result"),
            text=self.odd_text, thinking=self.odd_text, title=self.odd_text,
            context=self.odd_text,
            source=lambda: (self.chance(0.3) and self.text()) or self.odd(lambda: self.obj(
                type=self.one_of("text", "content", "base64", "url"),
                data=self.odd_text, url=self.text, content=nested)),
            input=self.json, content=nested, id=self.text, name=self.text))  # fmt: skip

    def blocks(self) -> Any:
        return self.text() if self.chance(0.3) else self.many(self.block)

    def request(self) -> dict[str, Any]:
        message = lambda: self.odd(lambda: self.obj(  # noqa: E731
            role=self.one_of("user", "assistant", "User", "ASSISTANT"), content=self.blocks))
        tool = lambda: self.odd(lambda: self.obj(  # noqa: E731
            name=self.text, description=self.odd_text, input_schema=self.json))
        return {"model": self.text(), "max_tokens": 9, "messages": self.many(message, 5),
                **self.obj(system=self.blocks, tools=lambda: self.many(tool, 2))}

    def response(self) -> dict[str, Any]:
        return {"id": self.text(), "content": self.many(self.block),
                **self.obj(stop_reason=self.text)}


class GoogleJunk(Junky):
    def part(self) -> Any:
        call = lambda: self.odd(lambda: self.obj(  # noqa: E731
            name=self.text, args=self.json, id=self.text))
        result = lambda: self.odd(lambda: self.obj(  # noqa: E731
            name=self.text, response=self.json))
        thought = lambda: self.odd(lambda: self.chance(0.3))  # noqa: E731
        return self.odd(lambda: self.rnd.choice([
            lambda: self.obj(text=self.odd_text, thought=thought),
            lambda: self.obj(text=self.odd_text, thought=thought),
            lambda: self.obj(functionCall=call, function_call=call),
            lambda: self.obj(functionResponse=result, function_response=result),
            lambda: self.obj(executableCode=lambda: self.odd(lambda: self.obj(
                language=self.text, code=self.odd_text)),
                codeExecutionResult=lambda: self.odd(lambda: self.obj(
                    outcome=self.text, output=self.odd_text))),
            lambda: self.obj(  # anything goes
                text=self.odd_text, thought=thought, thoughtSignature=self.text,
                functionCall=call, function_call=call, functionResponse=result,
                function_response=result,
                inlineData=lambda: {"mimeType": self.text(), "data": self.text()}),
        ])())  # fmt: skip

    def content(self, reply: bool = False) -> Any:
        if not reply and self.chance(0.2):
            return self.text()
        return self.odd(lambda: self.obj(
            role=(lambda: "model") if reply else self.one_of("user", "model", "function",
                                                             "USER", "Model"),
            parts=lambda: self.many(self.part, 5)))  # fmt: skip

    def request(self) -> dict[str, Any]:
        declaration = lambda: self.odd(lambda: self.obj(  # noqa: E731
            name=self.text, description=self.odd_text, parameters=self.json,
            parametersJsonSchema=self.json, response=self.json))
        tool = lambda: self.odd(lambda: self.obj(  # noqa: E731
            functionDeclarations=lambda: self.many(declaration, 2),
            function_declarations=lambda: self.many(declaration, 2)))
        return {"contents": self.many(self.content, 5), **self.obj(
            systemInstruction=self.content, system_instruction=self.content, model=self.text,
            generationConfig=lambda: {"maxOutputTokens": 9}, tools=lambda: self.many(tool, 2))}

    def response(self) -> Any:
        candidate = lambda: self.odd(lambda: self.obj(  # noqa: E731
            index=lambda: self.odd(lambda: self.rnd.randint(0, 2)),
            content=lambda: self.content(reply=True), finishReason=self.text))
        reply = lambda: {"candidates": self.many(candidate, 3),  # noqa: E731
                         **self.obj(modelVersion=self.text)}
        return [reply() for _ in range(self.rnd.randint(0, 3))] if self.chance(0.3) else reply()


def bodies(kind: type[Junky], reply: bool = False) -> Any:
    """Bodies from a seeded Random: hypothesis' own `randoms()` favour 0 and empty lists."""
    seeds = st.integers(0, 2**32)
    return seeds.map(lambda seed: getattr(kind(random.Random(seed)),
                                          "response" if reply else "request")())


OPENAI_BODIES = bodies(OpenAIJunk)
ANTHROPIC_BODIES = bodies(AnthropicJunk)
GOOGLE_BODIES = bodies(GoogleJunk)
OPENAI_RESPONSES = bodies(OpenAIJunk, reply=True)
ANTHROPIC_RESPONSES = bodies(AnthropicJunk, reply=True)
GOOGLE_RESPONSES = bodies(GoogleJunk, reply=True)

MARK = re.compile(r"\x01(\d+)\x02")


def marker(calls: list[tuple[str, str]]) -> Callable[[str, str], str]:
    """An fn that records its calls and appends the call number to the text."""

    def fn(role: str, text: str) -> str:
        calls.append((role, text))
        return f"{text}\x01{len(calls) - 1}\x02"

    return fn


def expected(texts: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(the fn calls, the texts read afterwards) that mirroring ``texts`` implies."""
    calls: list[tuple[str, str]] = []
    after: list[tuple[str, str]] = []

    def mark(value: Any, role: str) -> Any:
        if isinstance(value, str):
            calls.append((role, value))
            return f"{value}\x01{len(calls) - 1}\x02"
        if isinstance(value, dict):
            return {key: mark(item, role) for key, item in value.items()}
        if isinstance(value, list):
            return [mark(item, role) for item in value]
        return value

    for role, text in texts:
        try:
            value = json.loads(text)
        except ValueError:  # a text, or an object value that is a string: one call
            after.append((role, mark(text, role)))
            continue
        # a dump of an object value (tool input or arguments, a tool's schema, a reply's
        # text field holding a list or an object, read whole as a "result"): one call per
        # string inside
        assert role in ("tool", "system", "result")
        after.append((role, dump_compact(mark(value, role)) if value != {} else text))
    return calls, after


def strip_marks(value: Any) -> Any:
    if isinstance(value, str):
        return MARK.sub("", value)
    if isinstance(value, dict):
        return {key: strip_marks(item) for key, item in value.items()}
    if isinstance(value, list):
        return [strip_marks(item) for item in value]
    return value


def check_mirror(adapter: Adapter, path: str, original: dict[str, Any]) -> None:
    body = copy.deepcopy(original)
    calls_wanted, texts_wanted = expected(adapter.parse_request(path, original).texts)
    calls: list[tuple[str, str]] = []
    assert adapter.rewrite_request_texts(path, body, marker(calls)) is bool(calls)
    assert calls == calls_wanted
    assert adapter.parse_request(path, body).texts == texts_wanted
    # every result stored exactly once, and nothing else changed
    found = [int(m) for _, v in leaves(body) if isinstance(v, str) for m in MARK.findall(v)]
    assert sorted(found) == list(range(len(calls)))
    assert strip_marks(body) == original
    check_identity(lambda b, f: adapter.rewrite_request_texts(path, b, f), original)


@settings(max_examples=300, deadline=None)
@given(body=OPENAI_BODIES, azure=st.booleans())
def test_openai_rewrite_mirrors_parse_request(body: dict[str, Any], azure: bool) -> None:
    check_mirror(AZURE if azure else OPENAI, OPENAI_PATH, body)


@settings(max_examples=300, deadline=None)
@given(body=ANTHROPIC_BODIES)
def test_anthropic_rewrite_mirrors_parse_request(body: dict[str, Any]) -> None:
    check_mirror(ANTHROPIC, ANTHROPIC_PATH, body)


@settings(max_examples=300, deadline=None)
@given(body=GOOGLE_BODIES, vertex=st.booleans())
def test_google_rewrite_mirrors_parse_request(body: dict[str, Any], vertex: bool) -> None:
    check_mirror(VERTEX if vertex else GEMINI, VERTEX_PATH if vertex else GEMINI_PATH, body)


REALISTIC = [
    (OPENAI, OPENAI_PATH, OPENAI_BODY, OPENAI_TEXT_PATHS),
    (ANTHROPIC, ANTHROPIC_PATH, ANTHROPIC_BODY, ANTHROPIC_TEXT_PATHS),
    (GEMINI, GEMINI_PATH, GEMINI_BODY, GEMINI_TEXT_PATHS),
    (VERTEX, VERTEX_PATH, GEMINI_BODY, GEMINI_TEXT_PATHS),
]


def set_at(body: Any, path: JsonPath, value: Any) -> None:
    for step in path[:-1]:
        body = body[step]
    body[path[-1]] = value


@pytest.mark.parametrize(("adapter", "path", "template", "text_paths"), REALISTIC,
                         ids=["openai", "anthropic", "gemini", "vertex"])  # fmt: skip
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_realistic_bodies_with_random_texts(adapter: Adapter, path: str,
                                            template: dict[str, Any],
                                            text_paths: set[JsonPath], data: Any) -> None:
    original = copy.deepcopy(template)
    ordered = [p for p, _ in leaves(original) if p in text_paths]
    # non-empty: an empty refusal is no text
    texts = data.draw(st.lists(st.text(min_size=1, max_size=12), min_size=len(ordered),
                               max_size=len(ordered)))  # fmt: skip
    for text_path, text in zip(ordered, texts, strict=True):
        set_at(original, text_path, text)
    body = copy.deepcopy(original)
    calls: list[tuple[str, str]] = []
    changed = adapter.rewrite_request_texts(
        path, body, lambda r, t: calls.append((r, t)) or f"<{t}>")
    assert changed and [t for _, t in calls] == texts  # document order is parse order here
    assert changed_strings(original, body) == {
        p: (t, f"<{t}>") for p, t in zip(ordered, texts, strict=True)}
    before = adapter.parse_request(path, original).texts
    after = adapter.parse_request(path, body).texts
    assert [r for r, _ in after] == [r for r, _ in before]
    for (_, old), (_, new) in zip(before, after, strict=True):
        # a string slot is marked whole, an object value (its dump) string by string
        assert new == f"<{old}>" or new == dump_compact(bracket_strings(json.loads(old)))
    check_identity(lambda b, f: adapter.rewrite_request_texts(path, b, f), original)


def visible_pieces(adapter: Adapter, body: Any) -> list[str]:
    """parse_response's text of each choice / candidate on its own (it reads only the first)."""
    if adapter is ANTHROPIC:
        return [adapter.parse_response(body)[0]]
    key = "choices" if adapter is OPENAI else "candidates"
    elements = body if isinstance(body, list) else [body]
    return [adapter.parse_response({key: [{**item, "index": 0}]})[0]
            for element in elements if isinstance(element, dict)
            for item in (element.get(key) if isinstance(element.get(key), list) else [])
            if isinstance(item, dict)]  # fmt: skip


def check_response_mirror(adapter: Adapter, original: Any) -> None:
    texts = adapter.response_texts(original)
    # "result": a server tool result's strings (what the provider fetched), read too;
    # "name": a call's name
    assert {kind for kind, _ in texts} <= {"text", "thinking", "tool", "result", "name"}
    # what the user reads of each choice is its "text" texts
    assert "".join(t for k, t in texts if k == "text") == "".join(
        visible_pieces(adapter, original))
    calls_wanted, texts_wanted = expected(texts)
    body = copy.deepcopy(original)
    calls: list[tuple[str, str]] = []
    fn = marker(calls)
    assert adapter.rewrite_response_texts(body, lambda t: fn("assistant", t)) is bool(calls)
    assert [t for _, t in calls] == [t for _, t in calls_wanted]
    assert adapter.response_texts(body) == texts_wanted
    found = [int(m) for _, v in leaves(body) if isinstance(v, str) for m in MARK.findall(v)]
    assert sorted(found) == list(range(len(calls)))
    assert strip_marks(body) == original
    check_identity(adapter.rewrite_response_texts, original)


@settings(max_examples=300, deadline=None)
@given(body=OPENAI_RESPONSES)
def test_openai_response_rewrite_mirrors_parse_response(body: dict[str, Any]) -> None:
    check_response_mirror(OPENAI, body)


@settings(max_examples=300, deadline=None)
@given(body=ANTHROPIC_RESPONSES)
def test_anthropic_response_rewrite_mirrors_parse_response(body: dict[str, Any]) -> None:
    check_response_mirror(ANTHROPIC, body)


@settings(max_examples=300, deadline=None)
@given(body=GOOGLE_RESPONSES)
def test_google_response_rewrite_mirrors_parse_response(body: Any) -> None:
    check_response_mirror(GEMINI, body)


def _slot_by_slot(slots: Any, body: dict[str, Any], fn: Any, arguments: bool) -> bool:
    """The rewrite as every adapter wrote it before `values.rewrite_slots`: slot by slot."""
    changed = False
    for role, holder, key in slots(body):
        rewrite = rewrite_arguments if arguments and key == "arguments" else rewrite_json_strings
        changed |= rewrite(holder, key, role, fn)
    return changed


@settings(max_examples=300, deadline=None)
@given(data=st.data(), masking=st.booleans())
def test_the_shared_rewrite_is_the_slot_by_slot_one(data: st.DataObject, masking: bool) -> None:
    """Each adapter's rewrite (`values.rewrite_slots`, which rewrites a string slot in
    place) leaves a body exactly as rewriting it slot by slot does, a mask guard's fn (which
    sees keys and numbers too) or any other."""
    adapter, path, bodies, slots, arguments = data.draw(st.sampled_from([
        (OPENAI, OPENAI_PATH, OPENAI_BODIES, openai_prompts.request_slots, True),
        (ANTHROPIC, ANTHROPIC_PATH, ANTHROPIC_BODIES, anthropic_prompts.request_slots, False),
        (GEMINI, GEMINI_PATH, GOOGLE_BODIES, google_prompts.request_slots, False)]))
    body = data.draw(bodies)

    def change(role: str, text: str) -> str:   # tells JSON source (arguments) apart
        tag = "<json>" if isinstance(text, JsonSource) else ""
        return tag + str(text).replace("a", "<" + role + ">")

    fn = MaskingFn(change) if masking else change
    want, got = copy.deepcopy(body), copy.deepcopy(body)
    assert adapter.rewrite_request_texts(path, got, fn) == _slot_by_slot(slots, want, fn,
                                                                          arguments)
    assert got == want
