"""#8 item 7, the fields the no-leak property tests (tests/unit/test_no_leaks*.py) found unread,
through the real Envoy: a prompt carrying an e-mail address and an AWS-style key in each is
masked on a masking route (the mock records what reached it) and refused on a rejecting route
(a 400 in the provider's format before the provider sees anything).

The reply-side finds (an OpenAI audio transcript, a value split across the elements of a
Gemini JSON-array stream left as an array) are not replayed here: the mock writes neither (no
audio, and it never splits a word across elements); the unit tests play them through the
same `Exchange` the server runs.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.harness import Gateway, Mock
from tests.security.test_fields import (
    GEMINI_HI,
    HI,
    KEY,
    SCHEMA,
    VALUE,
    adjust,
    config,
    masked_json,
    no_fragment,
    prompt_body,
    provider_error,
    url,
)

pytestmark = pytest.mark.envoy


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path_factory.mktemp("no-leaks"), config(), mock=mock, adjust=adjust)
    yield gateway
    gateway.close()


def _server_result(kind: str, content: Any) -> dict[str, Any]:
    """An assistant turn with an Anthropic server tool call and its result."""
    return {"messages": [*HI, {"role": "assistant", "content": [
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search",
         "input": {"query": "q"}},
        {"type": kind, "tool_use_id": "srvtoolu_1", "content": content}]}, *HI]}


#: (id, provider, endpoint ("" for the provider's chat one), the body's fields)
PROMPTS: list[tuple[str, str, str, dict[str, Any]]] = [
    ("openai-predicted-output", "openai", "", {"messages": HI, "prediction": {
        "type": "content", "content": VALUE}}),
    ("openai-response-format-schema", "openai", "", {"messages": HI, "response_format": {
        "type": "json_schema", "json_schema": {"name": "out", "description": VALUE,
                                               "schema": SCHEMA}}}),
    ("openai-custom-tool-call-input", "openai", "", {"messages": [*HI, {
        "role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "custom", "custom": {"name": "run", "input": VALUE}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "done"}]}),
    ("openai-custom-tool-grammar", "openai", "", {"messages": HI, "tools": [{
        "type": "custom", "custom": {"name": "run", "format": {"type": "grammar", "grammar": {
            "syntax": "lark", "definition": f"start: {VALUE!r}"}}}}]}),
    ("responses-mcp-server-description", "openai", "/v1/responses", {"input": "hi", "tools": [
        {"type": "mcp", "server_label": "crm", "server_url": "https://mcp.example.net/",
         "server_description": VALUE, "require_approval": "never"}]}),
    ("responses-image-revised-prompt", "openai", "/v1/responses", {"input": [
        {"type": "image_generation_call", "id": "ig_1", "status": "completed",
         "result": None, "revised_prompt": VALUE}, {"role": "user", "content": "more"}]}),
    ("anthropic-web-search-result", "anthropic", "", _server_result(
        "web_search_tool_result", [{"type": "web_search_result", "title": VALUE,
                                    "url": "https://example.net/", "encrypted_content": "e"}])),
    ("anthropic-web-fetch-result", "anthropic", "", _server_result("web_fetch_tool_result", {
        "type": "web_fetch_result", "url": "https://example.net/", "content": {
            "type": "document", "source": {"type": "text", "media_type": "text/plain",
                                           "data": VALUE}}})),
    ("anthropic-code-execution-result", "anthropic", "", _server_result(
        "code_execution_tool_result", {"type": "code_execution_result", "stdout": VALUE,
                                       "stderr": "", "return_code": 0, "content": []})),
    ("gemini-response-schema", "gemini", "", {"contents": GEMINI_HI, "generationConfig": {
        "responseMimeType": "application/json", "responseSchema": SCHEMA}}),
    ("gemini-response-json-schema", "gemini", "", {"contents": GEMINI_HI, "generation_config": {
        "response_mime_type": "application/json", "response_json_schema": SCHEMA}}),
]
IDS = [i for i, *_ in PROMPTS]


def target(gw: Gateway, action: str, provider: str, endpoint: str) -> str:
    if endpoint:
        return f"{gw.url}/{action}-{provider}{endpoint}"
    return url(gw, action, provider)


@pytest.mark.parametrize(("provider", "endpoint", "fields"), [p[1:] for p in PROMPTS],
                         ids=IDS)
def test_a_prompt_field_is_masked_before_the_provider(gw: Gateway, provider: str,
                                                      endpoint: str,
                                                      fields: dict[str, Any]) -> None:
    body = prompt_body(provider, fields)
    r = httpx.post(target(gw, "mask", provider, endpoint), json=body, timeout=30)
    assert r.status_code == 200, r.text
    last = gw.mock.last()
    assert last is not None
    no_fragment(last["body"].encode())
    assert json.loads(last["body"]) == masked_json(body)


@pytest.mark.parametrize(("provider", "endpoint", "fields"), [p[1:] for p in PROMPTS],
                         ids=IDS)
def test_a_prompt_field_is_refused_before_the_provider(gw: Gateway, provider: str,
                                                       endpoint: str,
                                                       fields: dict[str, Any]) -> None:
    marker = uuid.uuid4().hex
    r = httpx.post(target(gw, "reject", provider, endpoint),
                   json=prompt_body(provider, fields, marker), timeout=30)
    assert r.status_code == 400, r.text
    assert provider_error(provider, r).startswith("request blocked by guard 'reject'")
    no_fragment(r.content)
    last = gw.mock.last()
    assert last is None or marker not in last["body"]


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_an_escape_before_a_key_in_a_tool_schema_does_not_hide_it(gw: Gateway,
                                                                  provider: str) -> None:
    """A JSON value read as its JSON text holds `\\nAKIA...`: no key for the detector. Reject
    guards also read it string by string, as the provider does."""
    schema = {"type": "object", "properties": {"to": {"type": "string",
                                                      "description": f"line\n{KEY}"}}}
    fields: dict[str, Any] = {
        "openai": {"messages": HI, "tools": [{"type": "function", "function": {
            "name": "send", "parameters": schema}}]},
        "anthropic": {"messages": HI, "tools": [{"name": "send", "input_schema": schema}]},
        "gemini": {"contents": GEMINI_HI, "tools": [{"functionDeclarations": [
            {"name": "send", "parameters": schema}]}]},
    }[provider]
    marker = uuid.uuid4().hex
    r = httpx.post(url(gw, "reject", provider), json=prompt_body(provider, fields, marker),
                   timeout=30)
    assert r.status_code == 400, r.text
    assert "aws access key" in provider_error(provider, r)
    last = gw.mock.last()
    assert last is None or marker not in last["body"]
    masked = prompt_body(provider, fields)
    r = httpx.post(url(gw, "mask", provider), json=masked, timeout=30)
    assert r.status_code == 200, r.text
    last = gw.mock.last()
    assert last is not None
    assert json.loads(last["body"]) == masked_json(masked)
