"""Prompt inputs no guard can read (binary media inline, files the provider fetches by id or
URL) are refused on a route whose guards read prompts, unless every guard that reads the
input's role lets its kind pass unread (`allow_unread`; `extproc.providers.unread`).

Each case is a request body of one provider's API carrying one such input where that API
puts it (a message part, a tool result, a function response, a prompt variable, the system
instruction), written from the API references. The adapter finds it with its role and kind;
a real `Exchange` refuses it with a 400 in the provider's format that names what and which
guard, and passes it byte for byte once the guard allows that kind."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extproc import loader
from extproc import protocol as P
from extproc.exchange import Exchange
from extproc.providers.endpoints import classify
from extproc.providers.unread import KINDS, NAMES, Unread
from extproc.reading import canonical_target
from extproc.schema import ConfigError
from tests.leak_prompts import respell
from tests.leaks import dumps
from tests.unit.test_exchange import request_body, request_headers, send

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAAB"
PDF = "JVBERi0xLjQKJcfsj6IKNSAwIG9iago="
TXT = "aGVsbG8gd29ybGQK"   # "hello world\n"
CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
MESSAGES = "/v1/messages"
GEMINI = "/v1beta/models/gemini-2.5-flash:generateContent"
GEMINI_COUNT = "/v1beta/models/gemini-2.5-flash:countTokens"
GEMINI_EMBED = "/v1beta/models/gemini-embedding-001:embedContent"
GEMINI_BATCH = "/v1beta/models/gemini-embedding-001:batchEmbedContents"
COUNT_TOKENS = "/v1/messages/count_tokens"
Body = dict[str, Any]


def chat(*parts: Body, role: str = "user") -> Body:
    return {"model": "gpt-4o-mini",
            "messages": [{"role": role, "content": [{"type": "text", "text": "see"}, *parts]}]}


def responses(*items: Body) -> Body:
    return {"model": "gpt-4o-mini", "input": list(items)}


def said(*parts: Body, role: str = "user") -> Body:
    return {"type": "message", "role": role,
            "content": [{"type": "input_text", "text": "see"}, *parts]}


def messages(*blocks: Body, role: str = "user") -> Body:
    return {"model": "claude-sonnet-4-5", "max_tokens": 100,
            "messages": [{"role": role, "content": [{"type": "text", "text": "see"}, *blocks]}]}


def tool_result(*blocks: Body) -> Body:
    body = messages()
    body["messages"] = [
        {"role": "user", "content": "look"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "shot",
                                           "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                      "content": list(blocks)}]}]
    return body


def gemini(*parts: Body, role: str = "user") -> Body:
    return {"contents": [{"role": role, "parts": [{"text": "see"}, *parts]}]}


def blob(mime: str | None, data: str = PNG, spelling: str = "inlineData") -> Body:
    inner: Body = {"data": data}
    if mime is not None:
        inner["mimeType" if spelling == "inlineData" else "mime_type"] = mime
    return {spelling: inner}


def file_data(mime: str | None, uri: str = "gs://bucket/f") -> Body:
    inner: Body = {"fileUri": uri}
    if mime is not None:
        inner["mimeType"] = mime
    return {"fileData": inner}


def data_url(mime: str, data: str = PNG) -> str:
    return f"data:{mime};base64,{data}"


#: (id, provider, path, body, (role, kind) found)
CASES: list[tuple[str, str, str, Body, tuple[str, str]]] = [
    ("chat-image-data", "openai", CHAT,
     chat({"type": "image_url", "image_url": {"url": data_url("image/png")}}), ("user", "image")),
    ("chat-image-url", "openai", CHAT,
     chat({"type": "image_url", "image_url": {"url": "https://x.test/cat.jpg"}}),
     ("user", "image")),
    ("chat-audio", "openai", CHAT,
     chat({"type": "input_audio", "input_audio": {"data": PNG, "format": "wav"}}),
     ("user", "audio")),
    ("chat-pdf", "openai", CHAT,
     chat({"type": "file", "file": {"filename": "a.pdf",
                                    "file_data": data_url("application/pdf", PDF)}}),
     ("user", "document")),
    # parts OpenAI-compatible servers (vLLM) load as media, and any part kind carrying a
    # URL (the request audit)
    ("chat-video-url", "openai", CHAT,
     chat({"type": "video_url", "video_url": {"url": "https://x.test/a.mp4"}}),
     ("user", "video")),
    ("chat-audio-url", "openai", CHAT,
     chat({"type": "audio_url", "audio_url": {"url": "https://x.test/a.wav"}}),
     ("user", "audio")),
    ("chat-image-embeds", "openai", CHAT,
     chat({"type": "image_embeds", "image_embeds": "AAAA"}), ("user", "image")),
    ("chat-unknown-part-by-url", "openai", CHAT,
     chat({"type": "document_url", "document_url": {"url": "https://x.test/a.bin"}}),
     ("user", "file")),
    ("chat-unknown-part-url-string", "openai", CHAT,
     chat({"type": "document_url", "document_url": "https://x.test/a.pdf"}), ("user", "file")),
    ("chat-file-id", "openai", CHAT,
     chat({"type": "file", "file": {"file_id": "file-abc"}}), ("user", "file")),
    ("chat-system-image", "openai", CHAT,
     chat({"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}, role="system"),
     ("system", "image")),
    ("responses-image", "openai", RESPONSES,
     responses(said({"type": "input_image", "image_url": data_url("image/png")})),
     ("user", "image")),
    ("responses-image-id", "openai", RESPONSES,
     responses(said({"type": "input_image", "file_id": "file-abc"})), ("user", "image")),
    ("responses-file-id", "openai", RESPONSES,
     responses(said({"type": "input_file", "file_id": "file-abc"})), ("user", "file")),
    ("responses-file-url", "openai", RESPONSES,
     responses(said({"type": "input_file", "file_url": "https://x.test/a.pdf"})),
     ("user", "file")),
    ("responses-pdf", "openai", RESPONSES,
     responses(said({"type": "input_file", "filename": "a.pdf",
                     "file_data": data_url("application/pdf", PDF)})), ("user", "document")),
    ("responses-tool-output-image", "openai", RESPONSES,
     responses({"type": "function_call", "call_id": "c1", "name": "shot", "arguments": "{}"},
               {"type": "function_call_output", "call_id": "c1",
                "output": [{"type": "input_image", "image_url": data_url("image/png")}]}),
     ("tool", "image")),
    ("responses-screenshot", "openai", RESPONSES,
     responses({"type": "computer_call_output", "call_id": "c1",
                "output": {"type": "computer_screenshot", "image_url": data_url("image/png")}}),
     ("tool", "image")),
    ("openai-audio-reply-sent-back", "openai", CHAT,
     {"model": "gpt-4o-audio-preview", "messages": [
         {"role": "user", "content": "say hi"},
         {"role": "assistant", "content": None, "audio": {"id": "audio_abc123"}},
         {"role": "user", "content": "again"}]},
     ("assistant", "audio")),
    ("responses-image-sent-back", "openai", RESPONSES,
     responses({"type": "image_generation_call", "id": "ig_1", "status": "completed",
                "result": PNG, "revised_prompt": "a cat"}, said()),
     ("assistant", "image")),
    ("responses-prompt-variable", "openai", RESPONSES,
     {"model": "gpt-4o-mini", "prompt": {"id": "pmpt_1", "variables": {
         "pic": {"type": "input_image", "image_url": "https://x.test/a.png"}}}},
     ("user", "image")),
    ("anthropic-image", "anthropic", MESSAGES,
     messages({"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                           "data": PNG}}), ("user", "image")),
    ("anthropic-image-url", "anthropic", MESSAGES,
     messages({"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}}),
     ("user", "image")),
    ("anthropic-pdf", "anthropic", MESSAGES,
     messages({"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                              "data": PDF}}), ("user", "document")),
    ("anthropic-pdf-url", "anthropic", MESSAGES,
     messages({"type": "document", "source": {"type": "url", "url": "https://x.test/a.pdf"}}),
     ("user", "document")),
    ("anthropic-file", "anthropic", MESSAGES,
     messages({"type": "document", "source": {"type": "file", "file_id": "file_01"}}),
     ("user", "document")),
    ("anthropic-container-upload", "anthropic", MESSAGES,
     messages({"type": "container_upload", "file_id": "file_01"}), ("user", "file")),
    ("anthropic-tool-result-image", "anthropic", MESSAGES,
     tool_result({"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                              "data": PNG}}), ("tool", "image")),
    ("gemini-image", "gemini", GEMINI, gemini(blob("image/png")), ("user", "image")),
    ("gemini-image-snake", "gemini", GEMINI, gemini(blob("image/png", spelling="inline_data")),
     ("user", "image")),
    ("gemini-audio", "gemini", GEMINI, gemini(blob("audio/wav")), ("user", "audio")),
    ("gemini-video", "gemini", GEMINI, gemini(blob("video/mp4")), ("user", "video")),
    ("gemini-pdf", "gemini", GEMINI, gemini(blob("application/pdf", PDF)),
     ("user", "document")),
    ("gemini-untyped", "gemini", GEMINI, gemini(blob(None)), ("user", "document")),
    ("gemini-file-video", "gemini", GEMINI, gemini(file_data("video/mp4")), ("user", "video")),
    ("gemini-file-text", "gemini", GEMINI, gemini(file_data("text/plain")), ("user", "file")),
    ("gemini-file-untyped", "gemini", GEMINI, gemini(file_data(None)), ("user", "file")),
    ("gemini-model-image", "gemini", GEMINI, gemini(blob("image/png"), role="model"),
     ("assistant", "image")),
    ("gemini-function-response-image", "gemini", GEMINI,
     gemini({"functionResponse": {"name": "shot", "response": {"ok": True},
                                  "parts": [blob("image/png")]}}), ("tool", "image")),
    ("gemini-system-image", "gemini", GEMINI,
     {"systemInstruction": {"parts": [blob("image/png")]}, **gemini()}, ("system", "image")),
    # a part or block of a kind newer than the adapters, carrying data or a file
    ("chat-unknown-part-data", "openai", CHAT, chat({"type": "input_video", "data": PNG}),
     ("user", "file")),
    ("responses-unknown-part-file", "openai", RESPONSES,
     responses(said({"type": "input_video", "file_id": "file-abc"})), ("user", "file")),
    ("anthropic-unknown-block-source", "anthropic", MESSAGES,
     messages({"type": "video", "source": {"type": "base64", "media_type": "video/mp4",
                                           "data": PNG}}), ("user", "file")),
    # the endpoints that read a prompt without generating: token counts and embeddings
    ("gemini-count-tokens", "gemini", GEMINI_COUNT, gemini(blob("image/png")),
     ("user", "image")),
    ("gemini-count-tokens-inner", "gemini", GEMINI_COUNT,
     {"generateContentRequest": {"model": "models/gemini-2.5-flash",
                                 **gemini(blob("application/pdf", PDF))}},
     ("user", "document")),
    ("gemini-embed", "gemini", GEMINI_EMBED,
     {"content": {"parts": [{"text": "a"}, blob("image/png")]}}, ("user", "image")),
    ("gemini-batch-embed", "gemini", GEMINI_BATCH,
     {"requests": [{"model": "models/gemini-embedding-001",
                    "content": {"parts": [file_data("video/mp4")]}}]}, ("user", "video")),
    # text in a charset the gateway does not read (decoded as UTF-8 it would be garbage)
    ("gemini-utf16-text", "gemini", GEMINI,
     gemini(blob("text/plain; charset=utf-16", TXT)), ("user", "document")),
    ("chat-utf16-text-file", "openai", CHAT,
     chat({"type": "file", "file": {"filename": "a.txt", "file_data": data_url(
         "text/plain;charset=UTF-16", TXT)}}), ("user", "document")),
    # what a hosted tool or a data source makes the provider load for the model by itself
    ("chat-azure-data-source", "openai", CHAT,
     {**chat(), "data_sources": [{"type": "azure_search", "parameters": {
         "endpoint": "https://s.search.windows.net", "index_name": "i"}}]}, ("system", "file")),
    ("responses-code-interpreter-files", "openai", RESPONSES,
     {**responses(said()), "tools": [{"type": "code_interpreter", "container": {
         "type": "auto", "file_ids": ["file-abc"]}}]}, ("system", "file")),
    ("responses-file-search", "openai", RESPONSES,
     {**responses(said()), "tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]},
     ("system", "file")),
    ("responses-shell-inline-skill", "openai", RESPONSES,
     {**responses(said()), "tools": [{"type": "shell", "environment": {
         "type": "container_auto", "skills": [{"type": "inline", "name": "s",
                                               "description": "d", "source": {
                                                   "type": "base64", "data": PDF,
                                                   "media_type": "application/zip"}}]}}]},
     ("system", "document")),
    # tools that fetch, for the model only, what a URL the request names holds (the request
    # audit): the page, an MCP server's tools and results never cross the gateway first
    ("gemini-url-context", "gemini", GEMINI, {**gemini(), "tools": [{"urlContext": {}}]},
     ("system", "fetched")),
    ("gemini-url-context-snake", "gemini", GEMINI, {**gemini(), "tools": [{"url_context": {}}]},
     ("system", "fetched")),
    ("anthropic-web-fetch", "anthropic", MESSAGES,
     {**messages(), "tools": [{"type": "web_fetch_20250910", "name": "web_fetch"}]},
     ("system", "fetched")),
    ("anthropic-mcp-servers", "anthropic", MESSAGES,
     {**messages(), "mcp_servers": [{"type": "url", "url": "https://mcp.x.test/sse",
                                     "name": "crm"}]}, ("system", "fetched")),
    ("responses-mcp-server", "openai", RESPONSES,
     {**responses(said()), "tools": [{"type": "mcp", "server_label": "crm",
                                      "server_url": "https://mcp.x.test/",
                                      "require_approval": "never"}]}, ("system", "fetched")),
    # hosted tools an input item gives (the request audit)
    ("responses-additional-tools-file-search", "openai", RESPONSES,
     responses(said(), {"type": "additional_tools", "tools": [
         {"type": "file_search", "vector_store_ids": ["vs_1"]}]}), ("system", "file")),
    ("responses-configuration-update-code-files", "openai", RESPONSES,
     responses({"type": "configuration_update", "tools": [{"type": "code_interpreter",
                "container": {"type": "auto", "file_ids": ["file-abc"]}}]}, said()),
     ("system", "file")),
    ("responses-namespace-skill-reference", "openai", RESPONSES,
     {**responses(said()), "tools": [{"type": "namespace", "name": "n", "tools": [
         {"type": "shell", "environment": {"type": "container_auto", "skills": [
             {"type": "skill_reference", "skill_id": "sk_1"}]}}]}]}, ("system", "file")),
    ("anthropic-container-skills", "anthropic", MESSAGES,
     {**messages(), "container": {"skills": [{"type": "custom", "skill_id": "sk_1"}]}},
     ("system", "file")),
    ("gemini-file-search-store", "gemini", GEMINI,
     {**gemini(), "tools": [{"fileSearch": {"fileSearchStoreNames": ["fileSearchStores/s"]}}]},
     ("system", "file")),
    # Vertex's retrieval tool: a RAG corpus, a Vertex AI Search data store (the body audit)
    ("vertex-retrieval-rag-store", "gemini", GEMINI,
     {**gemini(), "tools": [{"retrieval": {"vertexRagStore": {"ragResources": [
         {"ragCorpus": "projects/p/locations/us-central1/ragCorpora/1"}]}}}]},
     ("system", "file")),
    ("vertex-retrieval-search", "gemini", GEMINI,
     {**gemini(), "tools": [{"retrieval": {"vertexAiSearch": {
         "datastore": "projects/p/locations/global/collections/c/dataStores/d"}}}]},
     ("system", "file")),
    ("anthropic-count-tokens", "anthropic", COUNT_TOKENS,
     messages({"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}}),
     ("user", "image")),
]
IDS = [c[0] for c in CASES]

#: the same APIs' text files sent inline: read (decoded), so not refused as unread
READ: list[tuple[str, str, Body]] = [
    ("openai", CHAT, chat({"type": "file", "file": {"filename": "a.txt",
                                                    "file_data": data_url("text/plain", TXT)}})),
    ("openai", RESPONSES, responses(said({"type": "input_file", "filename": "a.txt",
                                          "file_data": data_url("text/plain", TXT)}))),
    ("anthropic", MESSAGES, messages({"type": "document", "source": {
        "type": "base64", "media_type": "text/plain", "data": TXT}})),
    ("gemini", GEMINI, gemini(blob("text/csv", TXT))),
    ("gemini", GEMINI, gemini(blob('text/plain; charset="UTF-8"', TXT))),
]


def config(allow: list[str] | None = None, roles: list[str] | None = None,
           apply_to: list[str] | None = None, second: Body | None = None) -> Any:
    pii: Body = {"detectors": ["email"], "action": "mask"}
    if allow is not None:
        pii["allow_unread"] = allow
    if roles is not None:
        pii["roles"] = roles
    if apply_to is not None:
        pii["apply_to"] = apply_to
    guards: Body = {"pii": pii}
    if second is not None:
        guards["dlp"] = second
    return loader.parse({
        "guards": guards,
        "routes": [{"name": p, "provider": p, "guards": list(guards)}
                   for p in ("openai", "anthropic", "gemini")]
        + [{"name": "open", "provider": "openai"}]})


def adapter(provider: str, path: str) -> Any:
    return classify(provider, "POST", canonical_target(path)).adapter


async def _run(cfg: Any, route: str, path: str, raw: bytes) -> tuple[bytes, Any]:
    ex = Exchange(cfg.route(route), route, cfg.server.max_request_body_bytes)
    [reply] = await send(ex, request_headers({":path": path}, req_mode=P.BUFFERED))
    assert reply.WhichOneof("response") == "request_headers", reply
    for r in await send(ex, request_body(raw, True)):
        if r.WhichOneof("response") == "immediate_response":
            ir = r.immediate_response
            return b"", (ir.status.code, json.loads(ir.body), ex.state.get("guard_request"))
        mutation = r.request_body.response.body_mutation
        return (mutation.body if mutation.WhichOneof("mutation") == "body" else raw), None
    raise AssertionError("no reply to the request body")


def run(cfg: Any, route: str, path: str, body: Body) -> tuple[bytes, Any]:
    return asyncio.run(_run(cfg, route, path, json.dumps(body).encode()))


@pytest.mark.parametrize(("case", "provider", "path", "body", "found"), CASES, ids=IDS)
def test_the_adapter_finds_each_unread_input_with_its_role_and_kind(
        case: str, provider: str, path: str, body: Body, found: tuple[str, str]) -> None:
    ad = adapter(provider, path)
    assert ad.unread_inputs(body) == [found]
    raw = json.dumps(body).encode()
    assert any(n in raw for n in ad.unread_needles)   # the byte precheck lets it through
    # a reader sees no text where the input is, and no marker leaks into what it reads
    prompt = ad.parse_request(path, body)
    assert all(isinstance(t, str) for _, t in prompt.texts)


@pytest.mark.parametrize(("case", "provider", "path", "body", "found"), CASES, ids=IDS)
def test_an_unread_input_is_refused_by_default_in_the_providers_format(
        case: str, provider: str, path: str, body: Body, found: tuple[str, str]) -> None:
    sent, refused = run(config(), provider, path, body)
    assert sent == b"" and refused is not None
    status, doc, decision = refused
    assert status == 400
    message = doc["error"]["message"]
    assert NAMES[found[1]] in message and "guard 'pii'" in message, message
    assert (doc.get("type") == "error") == (provider == "anthropic")   # Anthropic's envelope
    assert decision == f"pii:rejected:unread_{found[1]}"


@pytest.mark.parametrize(("case", "provider", "path", "body", "found"), CASES, ids=IDS)
def test_an_allowed_kind_passes_byte_for_byte_and_no_other(
        case: str, provider: str, path: str, body: Body, found: tuple[str, str]) -> None:
    raw = json.dumps(body).encode()
    sent, refused = run(config(allow=[found[1]]), provider, path, body)
    assert refused is None and sent == raw
    others = [k for k in KINDS if k != found[1]]
    assert run(config(allow=others), provider, path, body)[1] is not None


@pytest.mark.parametrize(("provider", "path", "body"), READ)
def test_a_text_file_inline_is_read_not_refused(provider: str, path: str, body: Body) -> None:
    assert adapter(provider, path).unread_inputs(body) == []
    sent, refused = run(config(), provider, path, body)
    assert refused is None and sent == json.dumps(body).encode()


def test_a_type_spelled_with_json_escapes_is_still_found() -> None:
    raw = json.dumps(chat({"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}))
    raw = raw.replace('"image_url"', '"\\u0069mage_url"')
    assert b"image" not in raw.encode().replace(b"x.test/a.png", b"")   # no plain needle left
    _, refused = asyncio.run(_run(config(), "openai", CHAT, raw.encode()))
    assert refused is not None and refused[0] == 400


def test_only_guards_that_read_the_role_decide() -> None:
    user = chat({"type": "image_url", "image_url": {"url": "https://x.test/a.png"}})
    system = chat({"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
                  role="system")
    # a guard that reads system prompts only has no say on a user's image...
    assert run(config(roles=["system"]), "openai", CHAT, user)[1] is None
    # ... and refuses a system prompt's
    assert run(config(roles=["system"]), "openai", CHAT, system)[1] is not None


def test_every_guard_that_reads_the_input_must_allow_it() -> None:
    body = chat({"type": "image_url", "image_url": {"url": "https://x.test/a.png"}})
    # a webhook guard cannot read it either (refused before any call is made)
    dlp = {"webhook": {"url": "http://127.0.0.1:9/check"}}
    _, refused = run(config(allow=["image"], second=dlp), "openai", CHAT, body)
    assert refused is not None and "guard 'dlp'" in refused[1]["error"]["message"]
    cards = {"detectors": ["card"], "action": "reject"}
    _, refused = run(config(allow=["image"], second=cards), "openai", CHAT, body)
    assert refused is not None and "guard 'dlp'" in refused[1]["error"]["message"]
    allowed = {**cards, "allow_unread": ["image", "audio"]}
    assert run(config(allow=["image"], second=allowed), "openai", CHAT, body)[1] is None


def test_reply_guards_and_unguarded_routes_take_no_part() -> None:
    body = chat({"type": "image_url", "image_url": {"url": "https://x.test/a.png"}})
    assert run(config(apply_to=["response"]), "openai", CHAT, body)[1] is None
    assert run(config(), "open", CHAT, body)[1] is None


def test_a_marker_reads_as_no_text_and_takes_no_rewrite() -> None:
    marker = Unread("image")
    marker[None] = "<EMAIL>"
    assert marker[None] == "" and repr(marker) == "Unread('image')"


def test_allow_unread_names_known_kinds_only() -> None:
    with pytest.raises(ConfigError) as err:
        config(allow=["image", "pictures"])
    assert "guards.pii.allow_unread[1]" in str(err.value) and "pictures" in str(err.value)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(CASES),
       chars=st.sets(st.sampled_from("abcdefghijklmnopqrstuvwxyz_ABCDEFGHIJKLMNOPQRSTUVWXYZ")),
       snake=st.booleans())
def test_however_the_body_is_spelled_the_precheck_never_skips_an_unread_input(
        case: tuple[str, str, str, Body, tuple[str, str]], chars: set[str],
        snake: bool) -> None:
    """The byte precheck in front of the walk is sound: any character of any key or string
    written as a JSON escape (`\\u0069mage_url`), Google's keys in either spelling, and the
    input is still found and refused."""
    _, provider, path, body, found = case
    if provider == "gemini" and snake:
        body = respell(body, lambda: True)
    raw = dumps(body, lambda ch: ch in chars).encode()
    assert adapter(provider, path).unread_inputs(json.loads(raw)) == [found]
    sent, refused = asyncio.run(_run(config(), provider, path, raw))
    assert sent == b"" and refused is not None and refused[0] == 400


@pytest.mark.parametrize("role", ["{0}", "{kind}", "}{", "x{y}z"])
def test_a_role_spelled_with_braces_gets_the_same_clean_refusal(role: str) -> None:
    """The role goes into the message as written: a role that looks like a format field
    is text, not a crash (an internal error instead of the 400)."""
    body = chat({"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}, role=role)
    _, refused = run(config(), "openai", CHAT, body)
    assert refused is not None and refused[0] == 400
    assert f"in a {role} message, which guard 'pii'" in refused[1]["error"]["message"]


def test_a_citation_an_earlier_reply_made_is_not_a_file() -> None:
    """An assistant turn may echo the reply's citations back (`url_citation` parts): text
    the model wrote, not a file a server fetches; a user's part naming a URL is one."""
    from extproc.providers import adapter_for
    cite = {"type": "url_citation", "url_citation": {"url": "https://x.test/", "title": "t"}}
    body = {"model": "gpt-4o-mini", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "text", "text": "see"}, cite]},
        {"role": "user", "content": "more"}]}
    assert adapter_for("openai").unread_inputs(body) == []
    body["messages"][0]["content"] = [{"type": "text", "text": "see"}, cite]
    assert adapter_for("openai").unread_inputs(body) == [("user", "file")]


def test_a_part_whose_type_is_not_a_string_is_read_not_a_failure() -> None:
    """Found by the exchange fuzzer in CI: a part type given as an object (unhashable) made
    the media-part lookup raise, and the client a 500."""
    from extproc.providers import adapter_for
    for kind in ({"a": 1}, ["video_url"], 3, None):
        body = {"model": "m", "messages": [{"role": "user", "content": [
            {"type": kind, "url": "https://x.test/a"}]}]}
        assert adapter_for("openai").unread_inputs(body) == [("user", "file")]
