"""Guards read the labels and examples the model reads beside a prompt's text, through the
real Envoy (found by the deny audit): the ``filename`` of an OpenAI/Azure chat ``file`` part
(in a user or a tool message) and of a Responses ``input_file`` (in a message or a
``function_call_output``), which OpenAI passes to the model with the file; an Anthropic
tool's ``input_examples``, the example inputs shown to Claude with the tool; the
``displayName`` of Gemini inline data. An e-mail there is masked on a masking route, an AWS
key refused with a 400, never passed upstream in clear. The files are text files sent
inline (read, decoded) or by id with `allow_unread: [file]`, so nothing else about the
requests is refused."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.harness import Gateway, Mock

pytestmark = pytest.mark.envoy

EMAIL = "john.doe@example.com"
AWS = "AKIAIOSFODNN7EXAMPLE"
DATA = "data:text/plain;base64," + base64.b64encode(b"meeting notes").decode()
B64 = base64.b64encode(b"meeting notes").decode()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    guards = {"secrets": {"detectors": ["secrets"], "action": "reject",
                          "allow_unread": ["file"]},
              "pii": {"detectors": ["email", "phone", "card"], "action": "mask",
                      "allow_unread": ["file"]}}
    routes = [{"name": p, "provider": p, "guards": ["secrets", "pii"]}
              for p in ("openai", "azure", "anthropic", "gemini")]
    gateway = Gateway(tmp_path_factory.mktemp("labels"),
                      {"guards": guards, "routes": routes}, mock=mock)
    yield gateway
    gateway.close()


def chat(secret: str) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "summarise the file"},
        {"type": "file", "file": {"filename": f"notes for {secret}.txt", "file_data": DATA}}]}]}


def chat_tool(secret: str) -> dict[str, Any]:
    call = {"id": "call_1", "type": "function",
            "function": {"name": "fetch", "arguments": "{}"}}
    return {"model": "gpt-4o-mini", "messages": [
        {"role": "user", "content": "fetch the notes"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": [
            {"type": "file", "file": {"filename": f"notes for {secret}.txt",
                                      "file_id": "file-abc"}}]}]}


def responses(secret: str) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "summarise the file"},
        {"type": "input_file", "filename": f"notes for {secret}.txt", "file_data": DATA}]}]}


def responses_output(secret: str) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "input": [
        {"type": "function_call", "call_id": "c1", "name": "fetch", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": [
            {"type": "input_file", "filename": f"notes for {secret}.txt",
             "file_id": "file-abc"}]}]}


def anthropic(secret: str) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "max_tokens": 64,
            "messages": [{"role": "user", "content": "look up my account"}],
            "tools": [{"name": "lookup", "description": "find an account",
                       "input_schema": {"type": "object",
                                        "properties": {"q": {"type": "string"}}},
                       "input_examples": [{"q": f"notes for {secret}.txt"}]}]}


def gemini(secret: str) -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [
        {"text": "summarise the file"},
        {"inlineData": {"mimeType": "text/plain", "data": B64,
                        "displayName": f"notes for {secret}.txt"}}]}]}


CASES: list[tuple[str, Callable[[str], dict[str, Any]]]] = [
    ("/openai/v1/chat/completions", chat),
    ("/openai/v1/chat/completions", chat_tool),
    ("/azure/openai/deployments/d/chat/completions?api-version=2024-10-21", chat),
    ("/openai/v1/responses", responses),
    ("/openai/v1/responses", responses_output),
    ("/anthropic/v1/messages", anthropic),
    ("/gemini/v1beta/models/gemini-2.5-flash:generateContent", gemini),
]
IDS = ["chat", "chat-tool", "azure-chat", "responses", "responses-output", "anthropic-examples",
       "gemini-display-name"]


def send(gw: Gateway, path: str, body: dict[str, Any]) -> tuple[httpx.Response, str | None]:
    """The reply, and the body the provider got (None if nothing reached it)."""
    httpx.get(gw.mock.url + "/reset")    # recorded as the mock's last request
    r = httpx.post(gw.url + path, json=body, timeout=30,
                   headers={"anthropic-beta": "advanced-tool-use-2025-11-20"})
    last = gw.mock.last()
    reached = last is not None and last["path"] != "/reset"
    return r, (last["body"] if reached and last is not None else None)


@pytest.mark.parametrize(("path", "body"), CASES, ids=IDS)
def test_an_address_in_a_label_is_masked(gw: Gateway, path: str,
                                         body: Callable[[str], dict[str, Any]]) -> None:
    r, upstream = send(gw, path, body(EMAIL))
    assert r.status_code == 200, r.text
    assert upstream is not None and EMAIL not in upstream
    assert "notes for <EMAIL>" in upstream


@pytest.mark.parametrize(("path", "body"), CASES, ids=IDS)
def test_a_key_in_a_label_is_refused(gw: Gateway, path: str,
                                     body: Callable[[str], dict[str, Any]]) -> None:
    r, upstream = send(gw, path, body(AWS))
    assert r.status_code == 400, r.text
    assert "aws access key" in r.text and AWS not in r.text
    assert upstream is None
