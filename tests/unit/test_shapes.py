"""Text fields in shapes no adapter reads are refused before any policy (extproc.providers.
shapes): each case here carried PII to the provider unguarded when the re-probe tried it."""

from __future__ import annotations

from typing import Any

import pytest

from extproc.providers.shapes import check

EMAIL = "john.doe@example.com"


@pytest.mark.parametrize(("endpoint", "body"), [
    ("chat.completions", {"messages": [{"role": "user", "content": {"text": EMAIL}}]}),
    ("chat.completions", {"messages": [{"role": "user", "content": [[EMAIL]]}]}),
    ("chat.completions", {"messages": [{"role": "user", "content": [
        {"type": "text", "text": {"value": EMAIL}}]}]}),
    ("chat.completions", {"messages": [{"role": "user", "content": 42}]}),
    ("chat.completions", {"messages": {"role": "user", "content": EMAIL}}),
    ("chat.completions", {"messages": [EMAIL]}),
    # a refusal or reasoning the chat adapter reads as a string only (found beside the
    # guard audit's list content in replies)
    ("chat.completions", {"messages": [{"role": "assistant", "content": "x",
                                        "refusal": [{"type": "text", "text": EMAIL}]}]}),
    ("chat.completions", {"messages": [{"role": "assistant", "content": "x",
                                        "reasoning_content": {"text": EMAIL}}]}),
    ("chat.completions", {"messages": [{"role": "assistant", "reasoning": [EMAIL]}]}),
    ("responses", {"input": {"role": "user", "content": EMAIL}}),
    ("responses", {"input": [{"role": "user", "content": {"text": EMAIL}}]}),
    ("messages", {"system": {"text": EMAIL}, "messages": []}),
    ("messages", {"system": [EMAIL], "messages": []}),
    ("messages", {"messages": [{"role": "user", "content": {"text": EMAIL}}]}),
    ("messages", {"messages": [{"role": "user", "content": [EMAIL]}]}),
    ("count_tokens", {"messages": [{"role": "user", "content": {"text": EMAIL}}]}),
    ("completions", {"prompt": [[EMAIL]]}),
    ("completions", {"prompt": {"text": EMAIL}}),
    ("embeddings", {"input": [[EMAIL]]}),
    ("embeddings", {"input": {"text": EMAIL}}),
    # found by review (2026-12-07): Google's Contents, parts and texts, tool descriptions,
    # Responses instructions and Anthropic tool results in shapes the adapters passed over
    ("generateContent", {"contents": [{"role": "user", "parts": EMAIL}]}),
    ("generateContent", {"contents": [{"role": "user", "parts": [EMAIL]}]}),
    ("generateContent", {"contents": [{"role": "user", "parts": [{"text": [EMAIL]}]}]}),
    ("generateContent", {"contents": [{"role": "user", "parts": [{"text": 4111111111111111}]}]}),
    ("generateContent", {"contents": EMAIL}),
    ("generateContent", {"contents": [[{"text": EMAIL}]]}),
    ("streamGenerateContent", {"contents": [], "systemInstruction": {"parts": EMAIL}}),
    ("streamGenerateContent", {"contents": [], "system_instruction": [EMAIL]}),
    ("generateContent", {"contents": [], "tools": [{"functionDeclarations": [
        {"name": "f", "description": [EMAIL]}]}]}),
    ("countTokens", {"contents": [{"parts": EMAIL}]}),
    ("countTokens", {"generateContentRequest": {"contents": [{"parts": [EMAIL]}]}}),
    ("embedContent", {"content": {"parts": EMAIL}}),
    ("batchEmbedContents", {"requests": [{"content": {"parts": [{"text": [EMAIL]}]}}]}),
    ("batchEmbedContents", {"requests": [EMAIL]}),
    ("chat.completions", {"messages": [], "tools": [{"type": "function", "function": {
        "name": "f", "description": [EMAIL]}}]}),
    ("chat.completions", {"messages": [], "functions": [{"name": "f", "description": {
        "text": EMAIL}}]}),
    ("responses", {"instructions": 4111111111111111}),
    ("responses", {"instructions": [{"role": "system", "content": {"text": EMAIL}}]}),
    ("responses", {"tools": [{"type": "function", "name": "f", "description": [EMAIL]}]}),
    ("messages", {"messages": [{"role": "user", "content": [{
        "type": "tool_result", "tool_use_id": "t", "content": {"type": "text",
                                                               "text": EMAIL}}]}]}),
    ("messages", {"messages": [], "tools": [{"name": "f", "description": [EMAIL]}]}),
    # found by the review of the fix (2026-12-07): more shapes the adapters passed over
    ("messages", {"messages": [{"role": "user", "content": [{
        "type": "tool_result", "tool_use_id": "t", "content": [{
            "type": "search_result", "source": "s", "title": "t",
            "content": [{"type": "text", "text": [EMAIL]}]}]}]}]}),
    ("messages", {"messages": [{"role": "user", "content": [{"type": "document", "source": {
        "type": "content", "content": [{"type": "text", "text": [EMAIL]}]}}]}]}),
    ("messages", {"messages": [{"role": "user", "content": [{"type": "document", "source": {
        "type": "text", "media_type": "text/plain", "data": [EMAIL]}}]}]}),
    ("embedContent", {"content": {"parts": [{"text": "hi"}]}, "title": [EMAIL]}),
    ("batchEmbedContents", {"requests": [{"content": {"parts": [{"text": "hi"}]},
                                          "title": {"t": EMAIL}}]}),
    ("embedContent", {"content": {"parts": [{"text": "hi"}]},
                      "embedContentConfig": {"title": [EMAIL]}}),
    ("countTokens", {"generateContentRequest": [{"contents": [{"parts": [{"text": EMAIL}]}]}]}),
    ("generateContent", {"contents": [{"role": "user", "parts": [{"functionResponse": {
        "name": "f", "response": {}, "parts": [{"text": EMAIL}]}}]}]}),
    ("chat.completions", {"messages": [], "tools": [{"type": "custom", "custom": {
        "name": "f", "description": [EMAIL]}}]}),
    ("messages", {"messages": [{"role": "user", "content": [{"type": "document", "title": [
        EMAIL], "source": {"type": "text", "media_type": "text/plain", "data": "x"}}]}]}),
    ("messages", {"messages": [{"role": "user", "content": [{"type": "document", "context": {
        "t": EMAIL}, "source": {"type": "text", "media_type": "text/plain", "data": "x"}}]}]}),
    ("messages", {"messages": [{"role": "user", "content": [{"type": "search_result",
        "source": [EMAIL], "title": "t", "content": [{"type": "text", "text": "x"}]}]}]}),
    ("messages", {"messages": [{"role": "user", "content": [{"type": "tool_result",
        "tool_use_id": "t", "content": [{"type": "search_result", "source": "s", "title": {
            "t": EMAIL}, "content": []}]}]}]}),
    # a stream flag a lenient server reads as true, with no usage report asked for
    ("chat.completions", {"messages": [], "stream": "true"}),
    ("chat.completions", {"messages": [], "stream": 1}),
    ("completions", {"prompt": "hi", "stream": "True"}),
])
def test_text_in_a_shape_no_adapter_reads_is_refused(endpoint: str, body: dict[str, Any]
                                                     ) -> None:
    assert check(endpoint, body) is not None


@pytest.mark.parametrize(("endpoint", "body"), [
    ("chat.completions", {"messages": [
        {"role": "system", "content": "s"}, {"role": "user", "content": [
            {"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "x"}}]},
        {"role": "assistant", "content": None, "tool_calls": []}, {"role": "user",
                                                                   "content": ["plain"]},
        {"role": "assistant", "content": "x", "refusal": None, "reasoning_content": "t"}]}),
    ("responses", {"input": "hi"}),
    ("responses", {"previous_response_id": "r", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        {"type": "function_call_output", "call_id": "c", "output": "ok"}]}),
    ("messages", {"system": [{"type": "text", "text": "s"}], "messages": [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "t", "signature": "x"}]}]}),
    ("completions", {"prompt": "hi"}), ("completions", {"prompt": ["a", "b"]}),
    ("completions", {"prompt": [1, 2]}), ("completions", {"prompt": [[1, 2], [3]]}),
    ("embeddings", {"input": ["a"]}), ("generateContent", {"contents": {"parts": {"text": "x"}}}),
    ("generateContent", {"contents": ["hi", {"role": "user", "parts": [
        {"text": "x"}, {"inlineData": {"mimeType": "text/plain", "data": "eA=="}},
        {"text": None}]}], "systemInstruction": "be brief", "tools": [
        {"functionDeclarations": [{"name": "f", "description": "d"}]}, {"googleSearch": {}}]}),
    ("countTokens", {"generateContentRequest": {"model": "m", "contents": [
        {"parts": [{"text": "x"}]}], "system_instruction": {"parts": {"text": "s"}}}}),
    ("embedContent", {"content": {"parts": [{"text": "x"}]}}),
    ("messages", {"messages": [{"role": "user", "content": [{
        "type": "tool_result", "tool_use_id": "t", "content": [{
            "type": "search_result", "source": "s", "title": "t",
            "content": [{"type": "text", "text": "ok"}]}]},
        {"type": "document", "source": {"type": "content", "content": [
            {"type": "text", "text": "x"}]}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                        "data": "x"}}]}]}),
    ("embedContent", {"content": {"parts": [{"text": "hi"}]}, "title": "t",
                      "embedContentConfig": {"title": "t"}}),
    ("generateContent", {"contents": [{"role": "user", "parts": [{"functionResponse": {
        "name": "f", "response": {}, "parts": [{"inlineData": {
            "mimeType": "image/png", "data": "eA=="}}]}}]}]}),
    ("chat.completions", {"messages": [], "tools": [{"type": "custom", "custom": {
        "name": "f", "description": "runs code"}}]}),
    ("chat.completions", {"messages": [], "stream": True}),
    ("chat.completions", {"messages": [], "stream": None}),
    ("completions", {"prompt": "hi", "stream": False}),
    ("batchEmbedContents", {"requests": [{"model": "m", "content": {"parts": [{"text": "x"}]}}]}),
    ("chat.completions", {"messages": [], "tools": [{"type": "function", "function": {
        "name": "f", "description": "d"}}, {"type": "function", "function": {"name": "g"}}]}),
    ("responses", {"instructions": [{"role": "system", "content": [
        {"type": "input_text", "text": "s"}]}], "input": "hi"}),
    ("messages", {"messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t", "content": "ok"},
        {"type": "tool_result", "tool_use_id": "u", "content": [{"type": "text", "text": "x"}]},
        {"type": "tool_result", "tool_use_id": "v"}]}],
        "tools": [{"name": "f", "description": "d"}, {"type": "web_search_20250305"}]}),
])
def test_the_shapes_providers_accept_pass(endpoint: str, body: dict[str, Any]) -> None:
    assert check(endpoint, body) is None
