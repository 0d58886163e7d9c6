"""The adapters of the endpoints beyond chat / messages / generateContent (Responses, legacy
Completions, Embeddings, Anthropic count_tokens, Gemini/Vertex countTokens and (batch)
embedContent): golden replies and streams read right, every text of a request is read with
its role and rewritten where it was read (and nothing else), usage reaches the stream
observer, malformed input never raises, and no e-mail address put in a field the model reads
survives masking."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.codecs.sse import SSEDecoder
from extproc.guards.scanner import Scanner, builtin
from extproc.llm.transforms import SSEObserver, SSEReframer, StreamReport
from extproc.providers import AnthropicAdapter, GoogleAdapter
from extproc.providers.anthropic_extra import AnthropicCountTokensAdapter
from extproc.providers.base import Adapter, Delta, Usage
from extproc.providers.google_extra import GoogleCountTokensAdapter, GoogleEmbedAdapter
from extproc.providers.openai_legacy import OpenAICompletionsAdapter, OpenAIEmbeddingsAdapter
from extproc.providers.openai_responses import OpenAIResponsesAdapter
from extproc.providers.values import dump_compact
from tests.jsonfuzz import json_values, spoil

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "endpoints"
EMAIL = "jane.roe@example.org"
SCANNER = Scanner(builtin(["email"]))

RESPONSES = OpenAIResponsesAdapter("openai")
COMPLETIONS = OpenAICompletionsAdapter("openai")
EMBEDDINGS = OpenAIEmbeddingsAdapter("openai")
COUNT = AnthropicCountTokensAdapter("anthropic")
GCOUNT = GoogleCountTokensAdapter("gemini")
VCOUNT = GoogleCountTokensAdapter("vertex")
EMBED = GoogleEmbedAdapter("gemini")
VEMBED = GoogleEmbedAdapter("vertex")

JsonPath = tuple[str | int, ...]


def golden(name: str) -> Any:
    return json.loads((GOLDEN / name).read_text())


def leaves(value: Any, path: JsonPath = ()) -> Iterator[tuple[JsonPath, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, (*path, index))
    else:
        yield path, value


def set_at(body: Any, path: JsonPath, value: Any) -> None:
    for step in path[:-1]:
        body = body[step]
    body[path[-1]] = value


# ------------------------------------------------------------------------ realistic requests

RESPONSES_PATH = "/v1/responses"
RESPONSES_BODY: dict[str, Any] = {
    "model": "gpt-5",
    "stream": True,
    "max_output_tokens": 500,
    "instructions": "Be brief.",
    "input": [
        {"role": "developer", "content": "Follow policy P."},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "Summarise the attached."},
            {"type": "input_image", "detail": "auto", "image_url": "https://example.com/a.png"},
            {"type": "input_file", "filename": "notes.pdf", "file_id": "file-123"}]},
        {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
         "content": [{"type": "output_text", "text": "Here it is.", "annotations": []},
                     {"type": "refusal", "refusal": "I can't share that."}]},
        {"type": "reasoning", "id": "rs_1", "encrypted_content": "gAAAAB",
         "summary": [{"type": "summary_text", "text": "Thinking about it."}]},
        {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "lookup",
         "arguments": '{"q":"weather"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "Sunny."},
        {"type": "function_call_output", "call_id": "call_2", "output": [
            {"type": "input_text", "text": "Cloudy."},
            {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]},
        {"type": "custom_tool_call", "call_id": "call_3", "name": "shell", "input": "ls -la"},
        {"type": "custom_tool_call_output", "call_id": "call_3", "output": "total 0"},
        {"type": "mcp_call", "id": "mcp_1", "server_label": "crm", "name": "find_contact",
         "arguments": '{"who":"Sam"}', "output": "Sam is in Paris."},
        {"type": "item_reference", "id": "msg_0"},
    ],
    "prompt": {"id": "pmpt_1", "version": "2", "variables": {
        "city": "Paris", "note": {"type": "input_text", "text": "Keep it short."}}},
    "tools": [
        {"type": "function", "name": "lookup", "description": "Look things up.", "strict": True,
         "parameters": {"type": "object", "required": ["q"],
                        "properties": {"q": {"type": "string", "description": "The query."}}}},
        {"type": "custom", "name": "shell", "description": "Run a shell command.",
         "format": {"type": "grammar", "syntax": "lark", "definition": "start: WORD"}},
        {"type": "web_search"},
    ],
    "text": {"format": {"type": "json_schema", "name": "answer", "description": "The answer.",
                        "strict": True, "schema": {"type": "object"}}},
    "metadata": {"team": "x"},
    "user": "user-1",
}
RESPONSES_TEXTS = [
    ("system", "Be brief."), ("system", "Follow policy P."),
    ("user", "Summarise the attached."), ("user", "notes.pdf"),   # a file's name is read
    ("assistant", "Here it is."), ("assistant", "I can't share that."),
    ("assistant", "Thinking about it."),
    ("tool", '{"q":"weather"}'), ("tool", "Sunny."), ("tool", "Cloudy."), ("tool", "ls -la"),
    ("tool", "total 0"), ("tool", "find_contact"), ("tool", '{"who":"Sam"}'),
    ("tool", "Sam is in Paris."),
    ("user", "Paris"), ("user", "Keep it short."),
    # a schema or grammar is read whole, as its compact dump: its keys (property names)
    # are text the model reads too
    ("system", "Look things up."),
    ("system", '{"type":"object","required":["q"],"properties":{"q":{"type":"string",'
               '"description":"The query."}}}'),
    ("system", "Run a shell command."),
    ("system", '{"type":"grammar","syntax":"lark","definition":"start: WORD"}'),
    ("system", "The answer."), ("system", '{"type":"object"}'),
]
# string fields the model does not read as prompt text (names, ids, enums, media, metadata)
RESPONSES_OPAQUE = {"model", "type", "role", "id", "call_id", "status", "name", "detail",
                    "image_url", "file_id", "encrypted_content", "server_label",
                    "version", "team", "user"}

COMPLETIONS_PATH = "/v1/completions"
COMPLETIONS_BODY: dict[str, Any] = {
    "model": "gpt-3.5-turbo-instruct", "prompt": ["Say this", "and that"], "suffix": "End.",
    "max_tokens": 16, "stream": True, "stop": ["\n"], "user": "user-1"}
COMPLETIONS_OPAQUE = {"model", "stop", "user"}

EMBEDDINGS_PATH = "/v1/embeddings"
EMBEDDINGS_BODY: dict[str, Any] = {"model": "text-embedding-3-small", "input": ["a", "b"],
                                   "encoding_format": "float", "user": "user-1"}
EMBEDDINGS_OPAQUE = {"model", "encoding_format", "user"}

COUNT_PATH = "/v1/messages/count_tokens"
COUNT_BODY: dict[str, Any] = {
    "model": "claude-sonnet-4-5", "system": "Sys.",
    "messages": [{"role": "user", "content": "Hi there."},
                 {"role": "assistant", "content": [{"type": "text", "text": "Hello."}]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                               "content": "42"}]}]}
COUNT_OPAQUE = {"model", "role", "type", "tool_use_id"}

GEMINI_COUNT_PATH = "/v1beta/models/gemini-2.5-flash:countTokens"
VERTEX_COUNT_PATH = ("/v1/projects/p/locations/us-central1/publishers/google/models/"
                     "gemini-2.5-flash:countTokens")
GCOUNT_BODY: dict[str, Any] = {
    "contents": [{"role": "user", "parts": [{"text": "Count me."}]}],
    "generateContentRequest": {
        "model": "models/gemini-2.5-flash",
        "systemInstruction": {"parts": [{"text": "Be kind."}]},
        "contents": [{"role": "user", "parts": [{"text": "And me."}]},
                     {"role": "model", "parts": [{"functionCall": {
                         "name": "f", "args": {"city": "Paris"}}}]}]}}
GCOUNT_OPAQUE = {"model", "role", "name"}

EMBED_PATH = "/v1beta/models/gemini-embedding-001:embedContent"
BATCH_PATH = "/v1beta/models/gemini-embedding-001:batchEmbedContents"
VERTEX_EMBED_PATH = ("/v1/projects/p/locations/us-central1/publishers/google/models/"
                     "gemini-embedding-001:embedContent")
EMBED_BODY: dict[str, Any] = {"model": "models/gemini-embedding-001",
                              "content": {"parts": [{"text": "Embed me."}]},
                              "taskType": "RETRIEVAL_DOCUMENT", "title": "A title",
                              "outputDimensionality": 8}
BATCH_BODY: dict[str, Any] = {"requests": [
    {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "One."}]},
     "title": "First"},
    {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "Two."}]}}]}
VERTEX_EMBED_BODY: dict[str, Any] = {"content": {"parts": [{"text": "Embed me."}]},
                                     "embedContentConfig": {"title": "A title",
                                                            "taskType": "RETRIEVAL_DOCUMENT"}}
EMBED_OPAQUE = {"model", "taskType", "role"}

REQUESTS = [
    ("responses", RESPONSES, RESPONSES_PATH, RESPONSES_BODY, RESPONSES_OPAQUE),
    ("completions", COMPLETIONS, COMPLETIONS_PATH, COMPLETIONS_BODY, COMPLETIONS_OPAQUE),
    ("embeddings", EMBEDDINGS, EMBEDDINGS_PATH, EMBEDDINGS_BODY, EMBEDDINGS_OPAQUE),
    ("count_tokens", COUNT, COUNT_PATH, COUNT_BODY, COUNT_OPAQUE),
    ("gemini_count", GCOUNT, GEMINI_COUNT_PATH, GCOUNT_BODY, GCOUNT_OPAQUE),
    ("vertex_count", VCOUNT, VERTEX_COUNT_PATH, GCOUNT_BODY, GCOUNT_OPAQUE),
    ("embed", EMBED, EMBED_PATH, EMBED_BODY, EMBED_OPAQUE),
    ("batch_embed", EMBED, BATCH_PATH, BATCH_BODY, EMBED_OPAQUE),
    ("vertex_embed", VEMBED, VERTEX_EMBED_PATH, VERTEX_EMBED_BODY, EMBED_OPAQUE),
]
IDS = [r[0] for r in REQUESTS]


def test_responses_request_reads_every_text_with_its_role() -> None:
    prompt = RESPONSES.parse_request(RESPONSES_PATH, copy.deepcopy(RESPONSES_BODY))
    assert (prompt.model, prompt.stream, prompt.max_output_tokens) == ("gpt-5", True, 500)
    assert prompt.texts == RESPONSES_TEXTS


def test_responses_string_input_and_item_instructions() -> None:
    body = {"model": "m", "input": "Hello.", "instructions": [
        {"role": "system", "content": "Sys."}]}
    assert RESPONSES.parse_request(RESPONSES_PATH, body).texts == [
        ("system", "Sys."), ("user", "Hello.")]
    assert RESPONSES.parse_request(RESPONSES_PATH, {"input": "x"}).stream is False


def test_unknown_item_types_are_read_whole_but_not_their_ids_or_payloads() -> None:
    body = {"input": [
        {"type": "shell_call_output", "call_id": "c", "output": [
            {"stdout": "out", "stderr": "err", "outcome": {"type": "exit", "exit_code": 0}}]},
        {"type": "some_future_item", "id": "x1", "note": "read me", "nested": {"deep": "too"}},
        {"type": "image_generation_call", "id": "ig", "result": "iVBORw0KGgo=",
         "status": "completed"},
        {"type": "computer_call_output", "call_id": "c",
         "output": {"type": "computer_screenshot", "image_url": "data:image/png;base64,AA"}},
    ]}
    assert RESPONSES.parse_request(RESPONSES_PATH, body).texts == [
        ("tool", "out"), ("tool", "err"), ("tool", "read me"), ("tool", "too")]


def test_a_type_that_is_not_a_string_is_an_unknown_kind_read_whole() -> None:
    body = {"input": [{"type": ["message"], "role": "user", "content": "hi"},
                      {"type": "message", "role": "user",
                       "content": [{"type": {"x": 1}, "text": "part"}]}]}
    assert RESPONSES.parse_request(RESPONSES_PATH, body).texts == [
        ("tool", "hi"), ("user", "part")]
    reply = {"output": [{"type": [], "arguments": "x"}], "status": "completed"}
    assert RESPONSES.parse_response(reply) == ("", "completed", Usage())
    # in a reply too: an item of a kind not known is read whole (fail closed), not skipped
    assert RESPONSES.rewrite_response_texts(reply, str.upper) is True
    assert reply["output"][0]["arguments"] == "X"


def test_other_requests_read_their_texts() -> None:
    prompt = COMPLETIONS.parse_request(COMPLETIONS_PATH, COMPLETIONS_BODY)
    assert (prompt.model, prompt.stream, prompt.max_output_tokens) == (
        "gpt-3.5-turbo-instruct", True, 16)
    assert prompt.texts == [("user", "Say this"), ("user", "and that"), ("user", "End.")]
    azure = COMPLETIONS.parse_request("/openai/deployments/dep-1/completions?api-version=x",
                                      {"prompt": "p", "model": "other"})
    assert azure.model == "dep-1" and azure.texts == [("user", "p")]
    prompt = EMBEDDINGS.parse_request(EMBEDDINGS_PATH, {**EMBEDDINGS_BODY, "stream": True})
    assert (prompt.model, prompt.stream, prompt.max_output_tokens) == (
        "text-embedding-3-small", False, None)
    assert prompt.texts == [("user", "a"), ("user", "b")]
    assert not EMBEDDINGS.is_stream_request(EMBEDDINGS_PATH, {"stream": True})
    prompt = COUNT.parse_request(COUNT_PATH, {**COUNT_BODY, "stream": True, "max_tokens": 9})
    assert (prompt.model, prompt.stream, prompt.max_output_tokens) == (
        "claude-sonnet-4-5", False, None)
    assert prompt.texts == AnthropicAdapter("anthropic").parse_request(
        "/v1/messages", COUNT_BODY).texts
    assert prompt.texts == [("system", "Sys."), ("user", "Hi there."),
                            ("assistant", "Hello."), ("tool", "42")]
    for adapter, path in ((GCOUNT, GEMINI_COUNT_PATH), (VCOUNT, VERTEX_COUNT_PATH)):
        prompt = adapter.parse_request(path, GCOUNT_BODY)
        assert (prompt.model, prompt.stream) == ("gemini-2.5-flash", False)
        assert prompt.texts == [("user", "Count me."), ("system", "Be kind."),
                                ("user", "And me."), ("tool", '{"city":"Paris"}')]
    assert EMBED.parse_request(EMBED_PATH, EMBED_BODY).texts == [
        ("user", "Embed me."), ("user", "A title")]
    assert EMBED.parse_request(BATCH_PATH, BATCH_BODY).texts == [
        ("user", "One."), ("user", "First"), ("user", "Two.")]
    assert VEMBED.parse_request(VERTEX_EMBED_PATH, VERTEX_EMBED_BODY).texts == [
        ("user", "Embed me."), ("user", "A title")]
    assert EMBED.parse_request(BATCH_PATH, BATCH_BODY).model == "gemini-embedding-001"


def test_token_id_inputs_carry_no_text_but_are_counted() -> None:
    body = {"model": "m", "prompt": [[1, 2, 3], [4, 5]]}
    assert COMPLETIONS.parse_request(COMPLETIONS_PATH, body).texts == []
    assert COMPLETIONS.opaque_tokens(body) == 5
    assert EMBEDDINGS.opaque_tokens({"input": [9, 8, 7]}) == 3
    assert EMBEDDINGS.opaque_tokens({"input": "text"}) == 0
    assert EMBEDDINGS.opaque_tokens({"input": [True, "x"]}) == 0


def test_what_each_endpoint_does() -> None:
    assert (RESPONSES.streams, RESPONSES.generates) == (True, True)
    assert (COMPLETIONS.streams, COMPLETIONS.generates) == (True, True)
    for adapter in (EMBEDDINGS, COUNT, GCOUNT, EMBED):
        assert (adapter.streams, adapter.generates) == (False, False)
        assert adapter.text_marker is None


# ---------------------------------------------------------------------- rewriting mirrors

MARK = re.compile("\u27e6(\\d+)\u27e7")   # survives a JSON dump unescaped


def string_leaves(value: Any) -> list[str]:
    return [v for _, v in leaves(value) if isinstance(v, str)]


def expected_calls(texts: list[tuple[str, str]],
                   calls: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The fn calls that mirroring `texts` implies: one per text, except that a text which
    is the compact dump of an object value (Anthropic tool_use input, Gemini functionCall
    args, read through the delegated adapters; a Responses tool's schema, all "tool" or
    "system"; a Gemini part of a kind newer than the adapter, in its turn's role) is
    rewritten string value by string value. `calls` only decides which of the two a
    dump-looking text was."""
    out: list[tuple[str, str]] = []
    for role, text in texts:
        if calls[len(out):len(out) + 1] == [(role, text)]:
            out.append((role, text))
            continue
        value = json.loads(text)
        assert isinstance(value, dict | list) and dump_compact(value) == text
        out.extend((role, leaf) for leaf in string_leaves(value))
    return out


def check_mirror(adapter: Adapter, path: str, original: dict[str, Any]) -> None:
    """fn sees exactly what parse_request reads (roles, order), its results land where the
    texts came from, nothing else changes, and an identity fn writes nothing."""
    texts = adapter.parse_request(path, copy.deepcopy(original)).texts
    body = copy.deepcopy(original)
    calls: list[tuple[str, str]] = []

    def mark(role: str, text: str) -> str:
        calls.append((role, text))
        return f"{text}\u27e6{len(calls) - 1}\u27e7"

    assert adapter.rewrite_request_texts(path, body, mark) is bool(calls)
    assert calls == expected_calls(texts, calls)
    after = adapter.parse_request(path, body).texts
    assert [(r, strip_marks(t)) for r, t in after] == texts
    assert len(MARK.findall("".join(t for _, t in after))) == len(calls)
    found = [int(m) for _, v in leaves(body) if isinstance(v, str) for m in MARK.findall(v)]
    assert sorted(found) == list(range(len(calls)))
    assert strip_marks(body) == original
    for same in (lambda _r, t: t, lambda _r, t: "".join(list(t))):
        body = copy.deepcopy(original)
        ids = [(p, id(v)) for p, v in leaves(body)]
        assert adapter.rewrite_request_texts(path, body, same) is False
        assert body == original and [(p, id(v)) for p, v in leaves(body)] == ids


def strip_marks(value: Any) -> Any:
    if isinstance(value, str):
        return MARK.sub("", value)
    if isinstance(value, dict):
        return {key: strip_marks(item) for key, item in value.items()}
    if isinstance(value, list):
        return [strip_marks(item) for item in value]
    return value


@pytest.mark.parametrize(("name", "adapter", "path", "body", "opaque"), REQUESTS, ids=IDS)
def test_rewrite_mirrors_parse_request(name: str, adapter: Adapter, path: str,
                                       body: dict[str, Any], opaque: set[str]) -> None:
    check_mirror(adapter, path, body)


_FUZZ_KEYS = ["type", "role", "content", "text", "input", "output", "arguments", "summary",
              "parts", "contents", "requests", "prompt", "refusal", "items", "tools",
              "description", "parameters", "variables", "title", "embedContentConfig"]


@settings(max_examples=150, deadline=None)
@given(which=st.sampled_from(REQUESTS), data=st.data())
def test_any_value_anywhere_is_read_and_rewritten_alike(which: tuple[Any, ...],
                                                        data: st.DataObject) -> None:
    """Spoiled bodies (any JSON value in any place): parse never raises, and the mirror
    holds."""
    _, adapter, path, template, _ = which
    body = spoil(copy.deepcopy(template), data, json_values(_FUZZ_KEYS),
                 data.draw(st.integers(0, 4)))
    if not isinstance(body, dict):
        return
    check_mirror(adapter, path, body)


# ------------------------------------------------------------- no e-mail survives masking


def mask(_role: str, text: str) -> str:
    return SCANNER.mask(text)


def _key_of(path: JsonPath) -> str:
    """The nearest object key on the path (for a list element, its list's key)."""
    return next((step for step in reversed(path) if isinstance(step, str)), "")


def text_paths(body: Any, opaque: set[str]) -> list[JsonPath]:
    """The string leaves that are not names, ids, enums or media."""
    return [p for p, v in leaves(body) if isinstance(v, str) and _key_of(p) not in opaque
            and not (len(p) >= 2 and p[-2] == "required")]


@settings(max_examples=200, deadline=None)
@given(which=st.sampled_from(REQUESTS), data=st.data())
def test_no_email_in_any_text_field_survives_masking(which: tuple[Any, ...],
                                                     data: st.DataObject) -> None:
    _, adapter, path, template, opaque = which
    body = copy.deepcopy(template)
    places = text_paths(body, opaque)
    chosen = data.draw(st.lists(st.sampled_from(places), min_size=1, unique=True))
    around = st.text(st.sampled_from("ab .,:\n"), max_size=5)
    for place in chosen:
        set_at(body, place, data.draw(around) + EMAIL + data.draw(around))
    adapter.rewrite_request_texts(path, body, mask)
    assert EMAIL not in json.dumps(body)
    assert "<EMAIL>" in json.dumps(body)


@pytest.mark.parametrize(("name", "adapter", "path", "body", "opaque"), REQUESTS, ids=IDS)
def test_every_text_field_is_masked(name: str, adapter: Adapter, path: str,
                                    body: dict[str, Any], opaque: set[str]) -> None:
    """Each text field on its own (the property test's exhaustive companion)."""
    for place in text_paths(body, opaque):
        doc = copy.deepcopy(body)
        set_at(doc, place, f"mail {EMAIL}")
        adapter.rewrite_request_texts(path, doc, mask)
        assert EMAIL not in json.dumps(doc), place


REPLY_SLOTS: list[JsonPath] = [
    ("output", 0, "summary", 0, "text"), ("output", 1, "content", 0, "text"),
    ("output", 2, "arguments")]


@settings(max_examples=100, deadline=None)
@given(chosen=st.lists(st.sampled_from(REPLY_SLOTS), min_size=1, unique=True),
       refusal=st.booleans())
def test_no_email_in_a_reply_text_survives_masking(chosen: list[JsonPath],
                                                   refusal: bool) -> None:
    body = golden("openai_responses_response.json")
    if refusal:
        body["output"][1]["content"].append({"type": "refusal", "refusal": f"no {EMAIL}"})
    for place in chosen:
        set_at(body, place, f"write to {EMAIL} today")
    assert RESPONSES.rewrite_response_texts(body, SCANNER.mask) is True
    assert EMAIL not in json.dumps(body)
    completion = golden("openai_completions_response.json")
    completion["choices"].append({"text": EMAIL, "index": 1, "finish_reason": "stop"})
    assert COMPLETIONS.rewrite_response_texts(completion, SCANNER.mask) is True
    assert EMAIL not in json.dumps(completion)


def test_a_rewritten_reply_text_loses_its_logprobs() -> None:
    body = golden("openai_responses_response.json")
    part = body["output"][1]["content"][0]
    part["logprobs"] = [{"token": "Envoy", "logprob": -0.1, "bytes": [69], "top_logprobs": []}]
    assert RESPONSES.rewrite_response_texts(body, lambda t: t) is False
    assert part["logprobs"] != []
    assert RESPONSES.rewrite_response_texts(body, str.upper) is True
    assert part["logprobs"] == []
    completion = golden("openai_completions_response.json")
    completion["choices"][0]["logprobs"] = {"tokens": ["The"], "token_logprobs": [-0.1]}
    assert COMPLETIONS.rewrite_response_texts(completion, str.upper) is True
    assert completion["choices"][0]["logprobs"] is None


def test_reply_rewrite_visits_every_generated_text_once() -> None:
    body = golden("openai_responses_response.json")
    seen: list[str] = []
    RESPONSES.rewrite_response_texts(body, lambda t: seen.append(t) or t.upper())
    assert seen == ["**Answering**\n\nLooked up the docs.",
                    "Envoy's ext_proc filter calls an external gRPC service.",
                    "Envoy docs", "https://www.envoyproxy.io/docs",   # its citation
                    '{"query":"ext_proc body modes"}', "search_docs"]   # and the call's name
    assert RESPONSES.parse_response(body)[0] == seen[1].upper()
    # a citation is read too: the page's title reaches the client
    assert body["output"][1]["content"][0]["annotations"][0]["title"] == "ENVOY DOCS"
    for adapter in (EMBEDDINGS, COUNT, GCOUNT, EMBED):
        assert adapter.rewrite_response_texts({"data": [{"embedding": [1.0]}]},
                                              str.upper) is False


# ------------------------------------------------------------------------ golden replies


GOLDEN_REPLIES = {
    "openai_responses_response.json", "openai_completions_response.json",
    "openai_embeddings_response.json", "anthropic_count_tokens_response.json",
    "gemini_count_tokens_response.json", "vertex_count_tokens_response.json",
    "gemini_embed_response.json", "gemini_batch_embed_response.json",
    "vertex_embed_response.json"}


def test_every_golden_file_is_used() -> None:
    on_disk = {p.name for p in GOLDEN.iterdir()}
    assert on_disk == GOLDEN_REPLIES | {s[1] for s in STREAMS}
    for path in GOLDEN.glob("*.sse"):
        raw = path.read_bytes()
        assert b"\r" not in raw and raw.endswith(b"\n\n")


def test_golden_replies() -> None:
    text, finish, usage = RESPONSES.parse_response(golden("openai_responses_response.json"))
    assert text == "Envoy's ext_proc filter calls an external gRPC service."
    assert finish == "completed"
    assert usage == Usage(812, 144, 956, 768, 64, 0)
    assert COMPLETIONS.parse_response(golden("openai_completions_response.json")) == (
        "\n\nThe gateway masks what it must.", "stop", Usage(6, 9, 15))
    assert EMBEDDINGS.parse_response(golden("openai_embeddings_response.json")) == (
        "", None, Usage(9, 0, 9))
    free = Usage(0, 0, 0)
    count = golden("anthropic_count_tokens_response.json")
    assert COUNT.parse_response(count) == ("", None, free)
    assert COUNT.counted_tokens(count) == 2095
    for name in ("gemini_count_tokens_response.json", "vertex_count_tokens_response.json"):
        assert GCOUNT.parse_response(golden(name)) == ("", None, free)
        assert GCOUNT.counted_tokens(golden(name)) == 31
    assert EMBED.parse_response(golden("gemini_embed_response.json")) == ("", None, Usage())
    assert EMBED.parse_response(golden("gemini_batch_embed_response.json"))[2].is_empty()
    assert VEMBED.parse_response(golden("vertex_embed_response.json")) == (
        "", None, Usage(7, 0, 7))


def test_incomplete_and_failed_replies() -> None:
    body = {"status": "incomplete", "incomplete_details": {"reason": "content_filter"},
            "output": [], "usage": {"input_tokens": 3, "output_tokens": 0}}
    assert RESPONSES.parse_response(body) == ("", "content_filter", Usage(3, 0, 3))
    assert RESPONSES.parse_response({"status": "incomplete"})[1] == "incomplete"
    assert RESPONSES.parse_response({"status": "failed"})[1] == "failed"


# ------------------------------------------------------------------------ golden streams


def events(name: str) -> list[tuple[bytes, str, str | None]]:
    decoder = SSEDecoder()
    raw = (GOLDEN / name).read_bytes()
    return [(ev.raw, ev.data, ev.event) for ev in [*decoder.feed(raw), *decoder.finish()]
            if ev.has_data]


def read_stream(adapter: Adapter, name: str) -> tuple[str, str | None, Usage, str | None]:
    text, finish, usage, error = "", None, Usage(), None
    for raw, data, event in events(name):
        delta = adapter.stream_delta(data, event)
        text += delta.text
        finish = delta.finish_reason or finish
        if delta.usage is not None:
            usage = adapter.merge_usage(usage, delta.usage)
        error = delta.error or error
        reports = delta.usage is not None or delta.finish_reason or delta.error
        if reports:   # the hot path only decodes events holding a needle
            assert any(n in raw for n in adapter.needles), raw[:80]
        if delta.usage is not None:
            assert adapter.may_carry_usage(data, event)
    return text, finish, usage, error


# the Responses goldens report `cache_write_tokens` (0) beside `cached_tokens`: the sixth
# field, cache_write_input_tokens
STREAMS = [
    (RESPONSES, "openai_responses_text_stream.sse",
     ("Sure! The gateway masks what it must, and passes the rest.", "completed",
      Usage(36, 15, 51, 0, 0, 0), None)),
    (RESPONSES, "openai_responses_tool_stream.sse",
     ("", "completed", Usage(1284, 211, 1495, 1152, 192, 0), None)),
    (RESPONSES, "openai_responses_incomplete_stream.sse",
     ("I'm sorry, I can't help with", "max_output_tokens", Usage(18, 7, 25, 0, 0, 0), None)),
    (RESPONSES, "openai_responses_failed_stream.sse",
     ("", "failed", Usage(), "The model produced invalid content.")),
    (COMPLETIONS, "openai_completions_stream.sse",
     ("\n\nThe gateway masks what it must.", "stop", Usage(6, 8, 14), None)),
]


@pytest.mark.parametrize(("adapter", "name", "expected"), STREAMS,
                         ids=[s[1] for s in STREAMS])
def test_golden_streams(adapter: Adapter, name: str, expected: tuple[Any, ...]) -> None:
    assert read_stream(adapter, name) == expected


def test_error_event_shapes() -> None:
    flat = '{"type":"error","sequence_number":3,"code":"rate_limit_exceeded","message":"Slow."}'
    nested = '{"type":"error","error":{"type":"server_error","code":null,"message":"Oops."}}'
    assert RESPONSES.stream_delta(flat, "error").error == "Slow."
    assert RESPONSES.stream_delta(nested, "error").error == "Oops."
    assert RESPONSES.stream_delta('{"type":"error"}', None).error == "error"
    created = '{"type":"response.created","response":{"error":null,"usage":null}}'
    assert RESPONSES.stream_delta(created, None) == Delta()
    # the JSON's type is trusted over the SSE event name
    text = '{"type":"response.output_text.delta","delta":"hi"}'
    assert RESPONSES.stream_delta(text, "response.completed").text == "hi"
    assert RESPONSES.stream_delta('{"delta":"hi"}', "response.refusal.delta").text == "hi"


def test_completions_usage_chunk_is_dropped_like_chat() -> None:
    *_, (_, last, _), (_, done, _) = events("openai_completions_stream.sse")
    assert COMPLETIONS.stream_delta(last, None).drop is True
    assert COMPLETIONS.is_usage_only_chunk(last) is True
    assert done == "[DONE]" and COMPLETIONS.stream_delta(done, None) == Delta()
    body = b'{"model":"m","prompt":"p","stream":true}'
    added = COMPLETIONS.add_stream_usage_option(body, json.loads(body))
    assert added is not None and json.loads(added)["stream_options"] == {"include_usage": True}
    assert RESPONSES.add_stream_usage_option(
        b'{"stream":true}', {"stream": True}) is None   # the API has no such option


SPOIL = json_values(["type", "delta", "response", "usage", "error", "output", "choices",
                     "text", "input_tokens", "output_tokens", "status", "message"])


@settings(max_examples=100, deadline=None)
@given(name=st.sampled_from([s[1] for s in STREAMS]), data=st.data())
def test_malformed_events_never_raise(name: str, data: st.DataObject) -> None:
    adapter = COMPLETIONS if "completions" in name else RESPONSES
    for _, raw, event in events(name):
        doc = json.loads(raw) if raw != "[DONE]" else "[DONE]"
        doc = spoil(doc, data, SPOIL, data.draw(st.integers(0, 3)))
        delta = adapter.stream_delta(json.dumps(doc), event)
        assert isinstance(delta, Delta) and isinstance(delta.text, str)
    for adapter in (RESPONSES, COMPLETIONS, EMBEDDINGS, COUNT, GCOUNT, EMBED):
        for junk in ("", "null", "[1]", '"x"', "{", '{"error":{"message":7}}', "1e999"):
            assert isinstance(adapter.stream_delta(junk, "error"), Delta)
            body = json.loads(junk) if junk not in ("", "{") else None
            assert isinstance(adapter.parse_response(body), tuple)   # type: ignore[arg-type]


# -------------------------------------------------------------- usage through the observer


def chunked(raw: bytes, cuts: list[int]) -> Iterator[bytes]:
    points = sorted({c % (len(raw) + 1) for c in cuts})
    for a, b in zip([0, *points], [*points, len(raw)], strict=True):
        yield raw[a:b]


@settings(max_examples=50, deadline=None)
@given(cuts=st.lists(st.integers(0, 1 << 16), max_size=12),
       which=st.sampled_from(STREAMS[:4]))
def test_sse_observer_reads_responses_usage(cuts: list[int], which: tuple[Any, ...]) -> None:
    """The pass-through observer (needle prefilter, then stream_delta) finds the usage of
    `response.completed` / `.incomplete`, the finish reason and a failure, however the
    stream is cut, and hands the bytes on untouched."""
    adapter, name, (_, finish, usage, error) = which
    seen: list[StreamReport] = []
    observer = SSEObserver(adapter, seen.append, False, 1 << 20)
    raw = (GOLDEN / name).read_bytes()
    out = b"".join(observer.feed(c) for c in chunked(raw, cuts)) + observer.finish()
    assert out == raw
    (report,) = seen
    assert (report.usage, report.finish_reason, report.error) == (usage, finish, error)


def test_sse_reframer_drops_the_completions_usage_chunk_it_asked_for() -> None:
    seen: list[StreamReport] = []
    reframer = SSEReframer(COMPLETIONS, seen.append, 1 << 20)
    raw = (GOLDEN / "openai_completions_stream.sse").read_bytes()
    out = reframer.feed(raw) + reframer.finish()
    assert b'"choices":[]' not in out and out.endswith(b"data: [DONE]\n\n")
    assert seen[0].usage == Usage(6, 8, 14) and seen[0].finish_reason == "stop"


def test_google_adapters_delegate_content_reading() -> None:
    """A change in how generateContent reads a Content reaches countTokens and embeddings:
    both go through the GoogleAdapter."""
    content = {"role": "user", "parts": [{"text": "A"}, {"thought": True, "text": "B"},
                                         {"functionResponse": {"response": {"r": "C"}}}]}
    want = GoogleAdapter("gemini").parse_request(
        "/v1beta/models/m:generateContent", {"contents": [content]}).texts
    assert GCOUNT.parse_request(GEMINI_COUNT_PATH, {"contents": [content]}).texts == want
    assert EMBED.parse_request(EMBED_PATH, {"content": content}).texts == want
    bare = {"content": "just a string"}
    assert EMBED.rewrite_request_texts(EMBED_PATH, bare, lambda r, t: t.upper()) is True
    assert bare == {"content": "JUST A STRING"}


def test_a_null_function_call_value_holds_no_text() -> None:
    """A `functionCall.args: null` (any JSON value can be sent) is read as nothing, as
    rewriting visits nothing there: reading and rewriting stay mirrors (hypothesis found it)."""
    body = {"contents": [{"role": "model", "parts": [
        {"functionCall": {"name": "f", "args": None}},
        {"functionResponse": {"name": "f", "response": 3}}]}]}
    adapter = GoogleCountTokensAdapter("gemini")
    assert adapter.parse_request("/v1beta/models/m:countTokens", body).texts == []


def test_count_tokens_and_embed_read_every_spelling_and_vertex_instances() -> None:
    """Which spelling Google keeps when a request sends both is not documented: both are
    read. Vertex's countTokens takes `instances` in the model's own schema: read whole."""
    secret = "jane.roe@example.org"
    body = {"generateContentRequest": {"contents": [{"parts": [{"text": "hi"}]}]},
            "generate_content_request": {"contents": [{"parts": [{"text": secret}]}]},
            "instances": [{"prompt": secret, secret: 1}]}
    texts = GCOUNT.parse_request(VERTEX_COUNT_PATH, body).texts
    assert sum(secret in t for _, t in texts) == 2
    from extproc.providers.values import MaskingFn
    assert GCOUNT.rewrite_request_texts(VERTEX_COUNT_PATH, body, MaskingFn(
        lambda _r, t: t.replace(secret, "<EMAIL>")))
    assert secret not in json.dumps(body)
    embed = {"content": {"parts": [{"text": "a"}]}, "embedContentConfig": {"title": "t"},
             "embed_content_config": {"title": secret}}
    assert ("user", secret) in EMBED.parse_request("/v1beta/models/m:embedContent", embed).texts
