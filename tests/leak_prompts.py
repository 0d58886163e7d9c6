"""Our catalogue of the text fields of each provider's requests, for the no-leak property tests
(tests/unit/test_no_leaks.py), and the endpoints that take them.

Written from the providers' API references and the official SDKs' request types (openai,
anthropic, google-genai), not from the adapters, so that a field the adapters miss shows in
the tests. A `Field` builds the endpoint-specific part of a valid body with a given text in
that field; an `Endpoint` wraps it into a whole body for one path of one provider. OpenAI's
fields are in `tests.leak_prompts_openai`.

Not listed, on purpose: Anthropic text blocks' `citations` (the API does not give their
`cited_text` to the model), request metadata and identifiers (`metadata`, `user`,
`safety_identifier`, `prompt_cache_key`: stored by the provider, not read by the model), and
hosted tools' settings (a web search's `user_location`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.leak_prompts_openai import (
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    RESPONSES,
    Body,
    Field,
    fields_of,
    schema,
)

# --- Anthropic Messages and count_tokens -----------------------------------------------

_AHI = {"role": "user", "content": "hi"}


def turn(*blocks: Body, role: str = "user") -> Body:
    """A conversation whose last `role` message holds `blocks` (after a tool_use turn, so a
    tool_result block is valid)."""
    use = {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1",
                                             "name": "send", "input": {}}]}
    if role == "user":
        return {"messages": [_AHI, use, {"role": "user", "content": list(blocks)}]}
    return {"messages": [_AHI, {"role": "assistant", "content": list(blocks)}, _AHI]}


def _result(*content: Body | str) -> Body:
    inner: Any = content[0] if len(content) == 1 and isinstance(content[0], str) \
        else list(content)
    return {"type": "tool_result", "tool_use_id": "toolu_1", "content": inner}


def _doc(source: Body, **extra: Any) -> Body:
    return {"type": "document", "source": source, **extra}


def _text_source(t: str) -> Body:
    return {"type": "text", "media_type": "text/plain", "data": t}


def _search(title: str = "t", text: str = "x", source: str = "https://x.test/") -> Body:
    return {"type": "search_result", "source": source, "title": title,
            "content": [{"type": "text", "text": text}]}


def _server(kind: str, content: Any) -> Body:
    return turn({"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search",
                "input": {"query": "q"}},
               {"type": kind, "tool_use_id": "srvtoolu_1", "content": content},
               role="assistant")


ANTHROPIC = fields_of({
    "user-string": lambda t: {"messages": [{"role": "user", "content": t}]},
    "user-text-block": lambda t: turn({"type": "text", "text": t}),
    "assistant-string": lambda t: {"messages": [_AHI, {"role": "assistant", "content": t}]},
    "assistant-text-block": lambda t: turn({"type": "text", "text": t}, role="assistant"),
    "system-string": lambda t: {"system": t, "messages": [_AHI]},
    "system-blocks": lambda t: {"system": [{"type": "text", "text": "be brief"},
                                           {"type": "text", "text": t}], "messages": [_AHI]},
    "system-role-message": lambda t: {"messages": [{"role": "system", "content": t}, _AHI]},
    "thinking": lambda t: turn({"type": "thinking", "thinking": t, "signature": "sig"},
                              {"type": "text", "text": "ok"}, role="assistant"),
    "tool-use-input": lambda t: turn({"type": "tool_use", "id": "toolu_2", "name": "send",
                                     "input": {"to": t}}, role="assistant"),
    "tool-use-input-nested": lambda t: turn({"type": "tool_use", "id": "toolu_2",
                                            "name": "send", "input": {"a": [{"b": [t]}]}},
                                           role="assistant"),
    "tool-use-name": lambda t: turn({"type": "tool_use", "id": "toolu_2", "name": t,
                                    "input": {}}, role="assistant"),
    "tool-result-string": lambda t: turn(_result(t)),
    "tool-result-text-blocks": lambda t: turn(_result({"type": "text", "text": t})),
    "tool-result-document": lambda t: turn(_result(_doc(_text_source(t)))),
    "tool-result-search-result": lambda t: turn(_result(_search(text=t))),
    "document-text": lambda t: turn(_doc(_text_source(t)), {"type": "text", "text": "sum"}),
    "document-content-blocks": lambda t: turn(_doc({"type": "content", "content": [
        {"type": "text", "text": t}]})),
    "document-title": lambda t: turn(_doc(_text_source("x"), title=t)),
    "document-context": lambda t: turn(_doc(_text_source("x"), context=t)),
    "search-result-title": lambda t: turn(_search(title=t)),
    "search-result-content": lambda t: turn(_search(text=t)),
    "search-result-source": lambda t: turn(_search(source=t)),
    "server-tool-use-input": lambda t: turn(
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search",
         "input": {"query": t}}, role="assistant"),
    "web-search-result-title": lambda t: _server("web_search_tool_result", [
        {"type": "web_search_result", "title": t, "url": "https://x.test/",
         "encrypted_content": "abc"}]),
    "web-fetch-result-document": lambda t: _server("web_fetch_tool_result", {
        "type": "web_fetch_result", "url": "https://x.test/",
        "content": _doc(_text_source(t))}),
    "code-execution-result": lambda t: _server("code_execution_tool_result", {
        "type": "code_execution_result", "stdout": t, "stderr": "", "return_code": 0,
        "content": []}),
    "bash-code-execution-result": lambda t: _server("bash_code_execution_tool_result", {
        "type": "bash_code_execution_result", "stdout": "", "stderr": t, "return_code": 1,
        "content": []}),
    "text-editor-view-result": lambda t: _server("text_editor_code_execution_tool_result", {
        "type": "text_editor_code_execution_view_result", "file_type": "text",
        "content": t}),
    "mcp-tool-use-input": lambda t: turn({"type": "mcp_tool_use", "id": "mcptoolu_1",
                                         "name": "f", "server_name": "s", "input": {"q": t}},
                                        role="assistant"),
    "mcp-tool-result": lambda t: turn({"type": "mcp_tool_result", "tool_use_id": "mcptoolu_1",
                                      "is_error": False,
                                      "content": [{"type": "text", "text": t}]}),
    "tool-description": lambda t: {"messages": [_AHI], "tools": [
        {"name": "send", "description": t, "input_schema": schema("who")}]},
    "tool-input-schema": lambda t: {"messages": [_AHI], "tools": [
        {"name": "send", "input_schema": schema(t)}]},
    "tool-input-examples": lambda t: {"messages": [_AHI], "tools": [
        {"name": "send", "input_schema": schema("who"), "input_examples": [{"to": t}]}]},
    "tool-name": lambda t: {"messages": [_AHI], "tools": [
        {"name": t, "input_schema": {"type": "object"}}]},
    "output-config-format-schema": lambda t: {"messages": [_AHI], "output_config": {
        "format": {"type": "json_schema", "schema": schema(t)}}},
    "output-format-beta-schema": lambda t: {"messages": [_AHI], "output_format": {
        "type": "json_schema", "schema": schema(t)}},
    # the compaction beta's summarising prompt (found by review)
    "context-management-compact-instructions": lambda t: {"messages": [_AHI],
                                                          "context_management": {"edits": [
        {"type": "compact_20260112", "instructions": t}]}},
}, idents=("tool-use-name", "tool-name"))

# --- Gemini / Vertex -------------------------------------------------------------------

_GHI = {"role": "user", "parts": [{"text": "hi"}]}


def contents(*parts: Body, role: str | None = "user") -> Body:
    last: Body = {"parts": list(parts)}
    if role is not None:
        last["role"] = role
    return {"contents": [_GHI, last] if role == "model" else [last]}


def _tools(decl: Body) -> Body:
    return {"contents": [_GHI], "tools": [{"functionDeclarations": [decl]}]}


def _gen(config: Body) -> Body:
    return {"contents": [_GHI], "generationConfig": {"responseMimeType": "application/json",
                                                     **config}}


#: the fields under `contents` (Gemini's countTokens takes them at the top level)
GOOGLE_CONTENTS = ("user-text", "model-text", "no-role-text", "thought", "function-call-args",
                   "function-call-args-nested", "function-call-name", "function-response",
                   "inline-data-display-name", "file-data-display-name",
                   "executable-code", "code-execution-result", "tool-call-args",
                   "tool-response", "unknown-part-content")
GOOGLE = fields_of({
    "user-text": lambda t: contents({"text": t}),
    "model-text": lambda t: contents({"text": t}, role="model"),
    "no-role-text": lambda t: contents({"text": t}, role=None),
    "thought": lambda t: contents({"text": t, "thought": True}, {"text": "ok"}, role="model"),
    "function-call-args": lambda t: contents(
        {"functionCall": {"name": "send", "args": {"to": t}}}, role="model"),
    "function-call-args-nested": lambda t: contents(
        {"functionCall": {"name": "send", "args": {"a": [{"b": [t]}]}}}, role="model"),
    "function-call-name": lambda t: contents(
        {"functionCall": {"name": t, "args": {}}}, role="model"),
    "function-response": lambda t: {"contents": [
        _GHI, {"role": "model", "parts": [{"functionCall": {"name": "send", "args": {}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "send",
                                                         "response": {"result": t}}}]}]},
    "inline-data-display-name": lambda t: contents({"text": "read it"}, {"inlineData": {
        "mimeType": "text/plain", "data": "bm90ZXM=", "displayName": t}}),
    "file-data-display-name": lambda t: contents({"text": "read it"}, {"fileData": {
        "mimeType": "application/pdf", "fileUri": "gs://b/a.pdf", "displayName": t}}),
    "executable-code": lambda t: contents(
        {"executableCode": {"language": "PYTHON", "code": t}}, role="model"),
    "code-execution-result": lambda t: contents(
        {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": t}}, role="model"),
    "system-instruction": lambda t: {"systemInstruction": {"parts": [{"text": t}]},
                                     "contents": [_GHI]},
    "system-instruction-role": lambda t: {"systemInstruction": {
        "role": "system", "parts": [{"text": "be brief"}, {"text": t}]}, "contents": [_GHI]},
    "tool-description": lambda t: _tools({"name": "send", "description": t,
                                          "parameters": schema("who")}),
    "tool-parameters": lambda t: _tools({"name": "send", "parameters": schema(t)}),
    "tool-parameters-json-schema": lambda t: _tools({"name": "send",
                                                     "parametersJsonSchema": schema(t)}),
    "tool-response-schema": lambda t: _tools({"name": "send", "response": schema(t)}),
    "tool-name": lambda t: _tools({"name": t}),
    "response-schema": lambda t: _gen({"responseSchema": schema(t)}),
    "response-json-schema": lambda t: _gen({"responseJsonSchema": schema(t)}),
    "response-json-schema-underscore": lambda t: _gen({"_responseJsonSchema": schema(t)}),
    "response-format-schema": lambda t: _gen({"responseFormat": {"text": {
        "mimeType": "APPLICATION_JSON", "schema": schema(t)}}}),
    "response-format-list-schema": lambda t: _gen({"responseFormat": [{"text": {
        "schema": schema(t)}}]}),
    "tool-call-args": lambda t: contents({"toolCall": {
        "id": "t1", "toolType": "GOOGLE_SEARCH_WEB", "args": {"query": t}}}, role="model"),
    "tool-response": lambda t: contents({"toolResponse": {
        "id": "t1", "toolType": "GOOGLE_SEARCH_WEB", "response": {"content": t}}}),
    "unknown-part-content": lambda t: contents({"text": "hi"}, {"futurePart": {
        "content": t}}),
}, idents=("function-call-name", "tool-name"))
GOOGLE_EMBED = fields_of({
    "content-text": lambda t: {"content": {"parts": [{"text": t}]}},
    "title": lambda t: {"content": {"parts": [{"text": "doc"}]},
                        "taskType": "RETRIEVAL_DOCUMENT", "title": t},
})

# --- endpoints -------------------------------------------------------------------------

GEMINI = "/v1beta/models/gemini-2.5-flash"
_V = "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash"
_AZ = "/openai/deployments/gpt-4o-mini"
_Q = "?api-version=2024-10-21"


def _as_is(part: Body) -> Body:
    return part


def _model(model: str, **extra: Any) -> Callable[[Body], Body]:
    return lambda part: {"model": model, **extra, **part}


def _batch(part: Body) -> Body:
    return {"requests": [{"model": "models/text-embedding-004", **part}]}


def _nested_count(part: Body) -> Body:
    return {"generateContentRequest": {"model": "models/gemini-2.5-flash", **part}}


@dataclass(frozen=True)
class Endpoint:
    provider: str
    path: str
    fields: list[Field]
    wrap: Callable[[Body], Body]


_OA = _model("gpt-4o-mini")
ENDPOINTS = [Endpoint(p, path, fields, wrap) for p, path, fields, wrap in [
    ("openai", "/v1/chat/completions", CHAT, _OA),
    ("openai", "/openai/v1/chat/completions", CHAT, _OA),
    ("openai", "/v1/responses", RESPONSES, _OA),
    ("openai", "/v1/completions", COMPLETIONS, _model("gpt-3.5-turbo-instruct")),
    ("openai", "/v1/embeddings", EMBEDDINGS, _model("text-embedding-3-small")),
    ("azure", f"{_AZ}/chat/completions{_Q}", CHAT, _as_is),
    ("azure", "/openai/v1/chat/completions", CHAT, _OA),
    ("azure", "/openai/v1/responses", RESPONSES, _OA),
    ("azure", "/openai/responses?api-version=2025-04-01-preview", RESPONSES, _OA),
    ("azure", f"{_AZ}/completions{_Q}", COMPLETIONS, _as_is),
    ("azure", "/openai/v1/completions", COMPLETIONS, _OA),
    ("azure", f"{_AZ}/embeddings{_Q}", EMBEDDINGS, _as_is),
    ("azure", "/openai/v1/embeddings", EMBEDDINGS, _model("text-embedding-3-small")),
    ("anthropic", "/v1/messages", ANTHROPIC, _model("claude-sonnet-4-5", max_tokens=64)),
    ("anthropic", "/v1/messages/count_tokens", ANTHROPIC, _model("claude-sonnet-4-5")),
    ("gemini", f"{GEMINI}:generateContent", GOOGLE, _as_is),
    ("gemini", f"{GEMINI}:streamGenerateContent?alt=sse", GOOGLE, _as_is),
    ("gemini", "/v1/models/gemini-2.5-flash:streamGenerateContent", GOOGLE, _as_is),
    ("gemini", "/v1alpha/tunedModels/my-model:generateContent", GOOGLE, _as_is),
    ("gemini", f"{GEMINI}:countTokens",
     [f for f in GOOGLE if f.id in GOOGLE_CONTENTS], _as_is),
    ("gemini", f"{GEMINI}:countTokens", GOOGLE, _nested_count),
    ("gemini", "/v1beta/models/text-embedding-004:embedContent", GOOGLE_EMBED, _as_is),
    ("gemini", "/v1beta/models/text-embedding-004:batchEmbedContents", GOOGLE_EMBED, _batch),
    ("vertex", f"{_V}:generateContent", GOOGLE, _as_is),
    ("vertex", f"{_V}:streamGenerateContent?alt=sse", GOOGLE, _as_is),
    ("vertex", f"/v1beta1{_V[3:]}:streamGenerateContent", GOOGLE, _as_is),
    ("vertex", f"{_V}:countTokens", GOOGLE, _as_is),
]]
CASES = [(e, f) for e in ENDPOINTS for f in e.fields if not f.ident]
#: tool and function names: the adapters read none as texts (identifiers: a mask could not
#: rewrite them); an identifier-shaped secret such as a key fits there, and the guards refuse
#: it (`extproc/guards/names.py`)
NAME_CASES = [(e, f) for e in ENDPOINTS for f in e.fields if f.ident]


def _snake(key: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in key)


def respell(doc: Any, snake: Callable[[], bool]) -> Any:
    """Google's JSON parser takes a field's proto name (`function_call`) as well as its JSON
    name (`functionCall`): each key spelled either way (our own keys are lower case)."""
    if isinstance(doc, dict):
        return {(_snake(k) if snake() else k): respell(v, snake) for k, v in doc.items()}
    if isinstance(doc, list):
        return [respell(v, snake) for v in doc]
    return doc
