"""Files by id or URL on routes with budgets (`limits.stored`; found by the spend audit): the
provider fetches the file and bills it as input (a PDF of hundreds of pages, a video by URI:
hundreds of thousands of tokens) that the prompt estimate never saw, so many such requests
sent at once each fit the budget and together spend it many times over. Like the context the
provider keeps (`previous_response_id`, `cachedContent`), they are refused with a 400 in the
client's format naming the field, unless the route sets ``allow_stored_context: true``.
Images by URL (billed at a bounded count) and inline data (it crosses the gateway) pass."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from extproc import loader
from extproc import protocol as P
from extproc.exchange import Exchange
from extproc.limits import stored
from tests.unit.test_exchange import immediate, request_body, request_headers, send

_ROUTES = (f"files{i}" for i in itertools.count())
PATHS = {"openai": "/v1/chat/completions", "responses": "/v1/responses",
         "anthropic": "/v1/messages",
         "gemini": "/v1beta/models/gemini-2.5-flash:generateContent",
         "vertex": "/v1/projects/p/locations/l/publishers/google/models/gemini-2.5-flash"
                   ":streamGenerateContent?alt=sse"}
PDF = "data:application/pdf;base64,JVBERi0xLjQK"
TOKENS = [{"name": "budget", "key": [], "tokens": [{"limit": 10 ** 6, "per": "1d"}]}]
SPEND = [{"name": "budget", "key": [], "spend": [{"limit": 100, "per": "1d"}]}]
REQUESTS = [{"name": "calls", "key": [], "requests": [{"limit": 1000, "per": "1m"}]}]


def chat(*parts: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "read this"}, *parts]}]}


def responses(*parts: Any, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "input": [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
        {"role": "user", "content": [{"type": "input_text", "text": "read this"}, *parts]}],
        **extra}


def claude(*blocks: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [
        {"role": "user", "content": [*blocks, {"type": "text", "text": "read this"}]}]}


def gemini(*parts: Any) -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": "read this"}, *parts]}]}


#: (provider, body, the field the refusal names)
REFUSED = [
    # (found by this stop's review) an earlier audio reply, by id: billed again as input
    ("openai", {"model": "gpt-4o-audio-preview", "messages": [
        {"role": "user", "content": "hi"}, {"role": "assistant", "audio": {"id": "audio_1"}},
        {"role": "user", "content": "again"}]},
     "messages[1].audio.id (an earlier audio reply stored at the provider)"),
    ("openai", chat({"type": "file", "file": {"file_id": "file-abc"}}),
     "messages[1].content[1].file.file_id (a file stored at the provider)"),
    ("openai", chat({"type": "file", "file": {"file_id": "file-abc", "filename": "a.pdf"}}),
     "messages[1].content[1].file.file_id"),
    ("openai", chat({"type": "video_url", "video_url": {"url": "https://x.test/a.mp4"}}),
     "messages[1].content[1].video_url (a video the server fetches from a URL)"),
    ("responses", responses({"type": "input_file", "file_id": "file-abc"}),
     "input[2].content[1].file_id (a file stored at the provider)"),
    ("responses", responses({"type": "input_file", "file_url": "https://x.test/a.pdf"}),
     "input[2].content[1].file_url (a file the provider fetches from a URL)"),
    ("responses", {"model": "gpt-4o", "input": [
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c",
         "output": [{"type": "input_file", "file_id": "file-abc"}]}]},
     "input[1].output[0].file_id"),
    ("responses", {"model": "gpt-4o", "input": "hi", "instructions": [
        {"role": "developer", "content": [{"type": "input_file", "file_id": "file-abc"}]}]},
     "instructions[0].content[0].file_id"),
    ("anthropic", claude({"type": "document",
                          "source": {"type": "file", "file_id": "file_011"}}),
     "messages[0].content[0].source.file_id (a file stored at the provider)"),
    ("anthropic", claude({"type": "document",
                          "source": {"type": "url", "url": "https://x.test/a.pdf"}}),
     "messages[0].content[0].source.url (a document the provider fetches from a URL)"),
    ("anthropic", claude({"type": "tool_result", "tool_use_id": "t", "content": [
        {"type": "document", "source": {"type": "url", "url": "https://x.test/a.pdf"}}]}),
     "messages[0].content[0].content[0].source.url"),
    ("gemini", gemini({"fileData": {"mimeType": "application/pdf",
                                    "fileUri": "https://generativelanguage.googleapis.com"
                                               "/v1beta/files/abc"}}),
     "contents[0].parts[1].fileData.fileUri (a file the provider fetches, application/pdf)"),
    ("gemini", gemini({"file_data": {"mime_type": "video/mp4",
                                     "file_uri": "https://www.youtube.com/watch?v=x"}}),
     "contents[0].parts[1].file_data.file_uri (a file the provider fetches, video/mp4)"),
    ("vertex", gemini({"fileData": {"fileUri": "gs://bucket/report.pdf"}}),
     "contents[0].parts[1].fileData.fileUri (a file the provider fetches, of no stated type)"),
    ("vertex", gemini({"functionResponse": {"name": "f", "response": {}, "parts": [
        {"fileData": {"mimeType": "application/pdf", "fileUri": "gs://b/a.pdf"}}]}}),
     "contents[0].parts[1].functionResponse.parts[0].fileData.fileUri"),
    # (found by review) Anthropic's compaction: a pass of the provider's own over the whole
    # conversation, billed apart from the usage the budgets read (`usage.iterations`)
    ("anthropic", {**claude(), "context_management": {"edits": [
        {"type": "compact_20260112", "trigger": {"type": "input_tokens", "value": 50000}}]}},
     "context_management.edits[0] (a compact_20260112 edit"),
    ("anthropic", {**claude(), "context_management": {"edits": [
        {"type": "clear_thinking_20251015"}, {"type": "summarize_2027"}]}},
     "context_management.edits[1] (a summarize_2027 edit"),
]

#: inputs that cross the gateway or are billed at a bounded count: never refused here
PASSED = [
    ("anthropic", {**claude(), "context_management": {"edits": [      # clearing, no pass
        {"type": "clear_thinking_20251015"}, {"type": "clear_tool_uses_20250919"}]}}),
    ("openai", chat({"type": "file", "file": {"file_data": PDF, "filename": "a.pdf"}})),
    ("openai", chat({"type": "image_url", "image_url": {"url": "https://x.test/a.png"}})),
    ("openai", chat({"type": "video_url", "video_url": {"url": "data:video/mp4;base64,AA"}})),
    ("responses", responses({"type": "input_file", "file_data": PDF, "filename": "a.pdf"})),
    ("responses", responses({"type": "input_image", "image_url": "https://x.test/a.png"})),
    ("responses", responses({"type": "input_image", "file_id": "file-img"})),
    ("responses", responses({"type": "output_text", "text": "see file-abc", "annotations": [
        {"type": "file_citation", "file_id": "file-abc", "index": 0}]})),
    ("anthropic", claude({"type": "document", "source": {
        "type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQK"}})),
    ("anthropic", claude({"type": "document",
                          "source": {"type": "text", "media_type": "text/plain",
                                     "data": "a file_id and a url, in words"}})),
    ("anthropic", claude({"type": "image", "source": {"type": "url",
                                                      "url": "https://x.test/a.png"}})),
    ("anthropic", claude({"type": "image", "source": {"type": "file", "file_id": "file_01"}})),
    ("gemini", gemini({"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0xLjQK"}})),
    ("gemini", gemini({"fileData": {"mimeType": "image/png", "fileUri": "gs://b/a.png"}})),
    ("vertex", gemini({"file_data": {"mime_type": "image/jpeg", "file_uri": "gs://b/a.jpg"}})),
]


def _route(provider: str, **route: Any) -> tuple[Any, str]:
    name = next(_ROUTES)
    cfg = loader.parse({"routes": [{"name": name, "auth": "none",
                                    "provider": "openai" if provider == "responses"
                                    else provider, **route}]})
    return cfg.route(name), name


async def _send(provider: str, body: dict[str, Any], **route: Any) -> Any:
    """The reply to `body` on a route of `provider` with `route`'s settings: an immediate
    response (status, JSON body, headers, details), or None when it went on."""
    r, name = _route(provider, **route)
    ex = Exchange(r, name)
    await send(ex, request_headers(req_mode=P.BUFFERED, path=PATHS[provider]))
    replies = await send(ex, request_body(json.dumps(body).encode(), True))
    refused = [x for x in replies if x.WhichOneof("response") == "immediate_response"]
    return (immediate(refused[0]), ex) if refused else (None, ex)


@pytest.mark.parametrize(("provider", "body", "field"), REFUSED)
@pytest.mark.parametrize("limits", [TOKENS, SPEND], ids=["tokens", "spend"])
async def test_a_file_by_id_or_url_is_refused_on_a_budget_route(
        provider: str, body: dict[str, Any], field: str, limits: list[Any]) -> None:
    route: dict[str, Any] = {"rate_limits": limits}
    if limits is SPEND:
        route["default_price"] = {"input": 1, "output": 1}
    reply, ex = await _send(provider, body, **route)
    assert reply is not None, "the request went on"
    status, doc, _, details = reply
    assert status == 400 and details == "extproc_stored_context"
    message = doc["error"]["message"]     # every provider's error format has one
    assert message.startswith(f"request refused: {field}")
    assert "allow_stored_context" in message
    assert ex.state["ratelimit"]["decision"] == "stored"
    if provider == "anthropic":
        assert doc["type"] == "error"
    elif provider in ("gemini", "vertex"):
        assert doc["error"]["code"] == 400


@pytest.mark.parametrize(("provider", "body", "field"), REFUSED)
async def test_a_route_may_allow_files_by_id_or_url(provider: str, body: dict[str, Any],
                                                    field: str) -> None:
    reply, _ = await _send(provider, body, rate_limits=TOKENS, allow_stored_context=True)
    assert reply is None


@pytest.mark.parametrize(("provider", "body", "field"), REFUSED)
async def test_a_route_without_budgets_lets_files_by_id_or_url_through(
        provider: str, body: dict[str, Any], field: str) -> None:
    assert (await _send(provider, body, rate_limits=REQUESTS))[0] is None
    assert (await _send(provider, body))[0] is None


@pytest.mark.parametrize(("provider", "body"), PASSED)
async def test_inline_data_and_images_are_not_refused(provider: str,
                                                      body: dict[str, Any]) -> None:
    reply, _ = await _send(provider, body, rate_limits=TOKENS)
    assert reply is None, reply


def test_the_walk_names_the_first_file_and_passes_text_at_a_glance() -> None:
    doc = chat({"type": "text", "text": "file_id: file-abc, url: https://x.test/a.pdf"},
               {"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}},
               {"type": "file", "file": {"file_id": "file-1"}},
               {"type": "file", "file": {"file_id": "file-2"}})
    assert stored.stored_context("chat.completions", doc) == \
        "messages[1].content[3].file.file_id (a file stored at the provider)"
    # a chat message is no part: its own fields are not read as a file's
    assert stored.fetched_file("chat.completions", {"messages": [
        {"role": "user", "content": "hi", "file_id": "file-1"}]}) is None
    # a part given as a Responses input item is
    assert stored.fetched_file("responses", {"input": [
        {"type": "input_file", "file_id": "file-1"}]}) == \
        "input[0].file_id (a file stored at the provider)"


def test_files_in_token_counts_and_legacy_endpoints_are_not_refused() -> None:
    """A count is free; legacy completions and embeddings take no files."""
    doc = claude({"type": "document", "source": {"type": "file", "file_id": "file_011"}})
    assert stored.fetched_file("count_tokens", doc) is None
    assert stored.fetched_file("countTokens", gemini({"fileData": {"fileUri": "gs://b/a"}})) is None
    assert stored.fetched_file("completions", {"prompt": "file_id"}) is None


@pytest.mark.parametrize("tool", [
    {"retrieval": {"vertexRagStore": {"ragResources": [
        {"ragCorpus": "projects/p/locations/l/ragCorpora/c"}]}}},
    {"retrieval": {"vertexAiSearch": {"datastore": "projects/p/locations/global/c/d"}}},
    {"fileSearch": {"fileSearchStoreNames": ["fileSearchStores/s"]}},
])
def test_a_retrieval_tool_is_no_stored_context(tool: dict[str, Any]) -> None:
    """Vertex's retrieval and Gemini's file search add their top passages as input: a
    bounded amount, like an image's, charged when the request settles (a review of the
    first fix found them ruled apart: now one rule)."""
    doc = {**gemini({"text": "hi"}), "tools": [{"googleSearch": {}}, tool]}
    for endpoint in ("generateContent", "streamGenerateContent", "countTokens"):
        assert stored.stored_context(endpoint, doc) is None


def test_gemini_embeddings_refuse_files_by_uri() -> None:
    part = {"fileData": {"mimeType": "video/mp4", "fileUri": "gs://b/a.mp4"}}
    assert stored.fetched_file("embedContent", {"content": {"parts": [part]}}) == \
        "content.parts[0].fileData.fileUri (a file the provider fetches, video/mp4)"
    assert stored.fetched_file("batchEmbedContents", {"requests": [
        {"content": {"parts": [{"text": "x"}]}},
        {"content": {"parts": [part]}}]}).startswith("requests[1].content.parts[0].fileData")


async def test_the_unified_front_refuses_a_file_id_in_openais_format(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """On the front the client speaks Chat Completions, whatever the backend: the refusal
    comes before any translation, in OpenAI's format."""
    monkeypatch.setenv("FAKE_KEY", "k")
    for backend in ("openai", "anthropic", "gemini"):
        name = next(_ROUTES)
        cfg = loader.parse({"routes": [{
            "name": name, "provider": "openai-compatible", "auth": "none",
            "backends": {backend: {"upstream_credential": {"env": "FAKE_KEY"}}},
            "models": [{"model": "front-*", "backend": backend}], "rate_limits": TOKENS}]})
        ex = Exchange(cfg.route(name), name)
        body = {**chat({"type": "file", "file": {"file_id": "file-abc"}}), "model": "front-x"}
        await send(ex, request_headers(req_mode=P.BUFFERED))
        replies = await send(ex, request_body(json.dumps(body).encode(), True))
        status, doc, _, details = immediate(replies[0])
        assert status == 400 and details == "extproc_stored_context", (backend, doc)
        assert doc["error"]["message"].startswith(
            "request refused: messages[1].content[1].file.file_id (a file stored")
        assert doc["error"]["type"] == "invalid_request_error"
