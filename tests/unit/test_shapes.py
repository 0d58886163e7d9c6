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
])
def test_the_shapes_providers_accept_pass(endpoint: str, body: dict[str, Any]) -> None:
    assert check(endpoint, body) is None
