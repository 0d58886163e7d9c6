"""The labels and examples the model reads beside a prompt's text are texts the guards read
and rewrite, with the role of the message that holds them (found by the deny audit): a chat
``file`` part's ``filename`` (user and tool messages, Azure too), a Responses ``input_file``'s
``filename`` (in a message and in a ``function_call_output``), an Anthropic tool's
``input_examples`` (as its compact JSON, rewritten string by string), the ``displayName`` of
Gemini inline and file data (either spelling, a function response's files too)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from extproc.providers import AnthropicAdapter, GoogleAdapter, OpenAIAdapter
from extproc.providers.anthropic_extra import AnthropicCountTokensAdapter
from extproc.providers.base import Adapter
from extproc.providers.openai_responses import OpenAIResponsesAdapter

DATA = "data:text/plain;base64,bm90ZXM="        # "notes", a text file sent inline
CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
MESSAGES = "/v1/messages"
GEMINI = "/v1beta/models/gemini-2.5-flash:generateContent"


def chat_file(file: dict[str, Any], role: str = "user") -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "hi"}]
    if role == "tool":
        messages.append({"role": "assistant", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]})
        messages.append({"role": "tool", "tool_call_id": "c1",
                         "content": [{"type": "file", "file": file}]})
    else:
        messages.append({"role": role, "content": [{"type": "file", "file": file}]})
    return {"model": "gpt-4o", "messages": messages}


CASES: list[tuple[Adapter, str, dict[str, Any], tuple[str, str]]] = [
    (OpenAIAdapter("openai"), CHAT,
     chat_file({"filename": "a@x.org.txt", "file_data": DATA}), ("user", "a@x.org.txt")),
    (OpenAIAdapter("openai"), CHAT,
     chat_file({"filename": "a@x.org.pdf", "file_id": "file-1"}, "tool"),
     ("tool", "a@x.org.pdf")),
    (OpenAIAdapter("openai"), CHAT,
     chat_file({"filename": "a@x.org.txt", "file_data": DATA}, "developer"),
     ("system", "a@x.org.txt")),
    (OpenAIAdapter("azure"), "/openai/deployments/d/chat/completions?api-version=2024-10-21",
     chat_file({"filename": "a@x.org.txt", "file_data": DATA}), ("user", "a@x.org.txt")),
    (OpenAIResponsesAdapter("openai"), RESPONSES,
     {"input": [{"role": "user", "content": [
         {"type": "input_file", "filename": "a@x.org.txt", "file_data": DATA}]}]},
     ("user", "a@x.org.txt")),
    (OpenAIResponsesAdapter("azure"), "/openai/v1/responses",
     {"input": [{"type": "function_call_output", "call_id": "c1", "output": [
         {"type": "input_file", "filename": "a@x.org.pdf", "file_id": "file-1"}]}]},
     ("tool", "a@x.org.pdf")),
    (AnthropicAdapter("anthropic"), MESSAGES,
     {"messages": [{"role": "user", "content": "hi"}],
      "tools": [{"name": "f", "input_schema": {"type": "object"},
                 "input_examples": [{"to": "a@x.org"}]}]},
     ("system", '[{"to":"a@x.org"}]')),
    (AnthropicCountTokensAdapter("anthropic"), "/v1/messages/count_tokens",
     {"messages": [{"role": "user", "content": "hi"}],
      "tools": [{"name": "f", "input_schema": {"type": "object"},
                 "input_examples": [{"to": "a@x.org"}]}]},
     ("system", '[{"to":"a@x.org"}]')),
    (GoogleAdapter("gemini"), GEMINI,
     {"contents": [{"role": "user", "parts": [
         {"inlineData": {"mimeType": "text/plain", "data": "bm90ZXM=",
                         "displayName": "a@x.org.txt"}}]}]},
     ("user", "a@x.org.txt")),
    (GoogleAdapter("vertex"), GEMINI,
     {"contents": [{"role": "user", "parts": [
         {"file_data": {"mime_type": "application/pdf", "file_uri": "gs://b/a.pdf",
                        "display_name": "a@x.org.pdf"}}]}]},
     ("user", "a@x.org.pdf")),
    (GoogleAdapter("gemini"), GEMINI,
     {"contents": [{"role": "user", "parts": [{"functionResponse": {
         "name": "f", "response": {}, "parts": [{"inlineData": {
             "mimeType": "image/png", "data": "AAAA", "displayName": "a@x.org.png"}}]}}]}]},
     ("tool", "a@x.org.png")),
]
IDS = ["chat", "chat-tool", "chat-developer", "azure", "responses", "responses-output",
       "anthropic", "anthropic-count", "gemini-inline", "vertex-file", "gemini-response-file"]


@pytest.mark.parametrize(("adapter", "path", "body", "text"), CASES, ids=IDS)
def test_a_label_is_read_with_its_message_role(adapter: Adapter, path: str,
                                               body: dict[str, Any],
                                               text: tuple[str, str]) -> None:
    assert text in adapter.parse_request(path, copy.deepcopy(body)).texts


@pytest.mark.parametrize(("adapter", "path", "body", "text"), CASES, ids=IDS)
def test_a_label_is_rewritten_where_it_was(adapter: Adapter, path: str,
                                           body: dict[str, Any],
                                           text: tuple[str, str]) -> None:
    masked = copy.deepcopy(body)
    assert adapter.rewrite_request_texts(path, masked, lambda _r, t: t.replace("a@x.org", "<M>"))
    assert "a@x.org" not in str(masked) and "<M>" in str(masked)
    unchanged = copy.deepcopy(body)
    adapter.rewrite_request_texts(path, unchanged, lambda _r, t: t)
    assert unchanged == body


def test_a_file_name_in_a_part_of_an_unknown_kind_is_read() -> None:
    """A chat part of a kind newer than the code has every string read, a file's name too
    (its data and id stay opaque)."""
    body = {"messages": [{"role": "user", "content": [{"type": "future_file", "file": {
        "filename": "a@x.org.txt", "file_id": "file-1", "file_data": DATA}}]}]}
    assert OpenAIAdapter("openai").parse_request(CHAT, body).texts == [("user", "a@x.org.txt")]
