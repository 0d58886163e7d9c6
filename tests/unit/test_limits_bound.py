"""The output bound token and spend budgets write into a request naming none
(`limits.bound`): the reservation is what the provider may generate."""

from __future__ import annotations

from typing import Any

import pytest

from extproc.limits.bound import bounded


@pytest.mark.parametrize(("endpoint", "doc", "model", "want"), [
    ("chat.completions", {"messages": []}, "o3", {"messages": [], "max_completion_tokens": 9}),
    ("chat.completions", {"messages": []}, "gpt-4o", {"messages": [], "max_tokens": 9}),
    ("chat.completions", {"max_completion_tokens": None}, "gpt-4o", {"max_tokens": 9}),
    ("chat.completions", {"max_tokens": None}, None, {"max_completion_tokens": 9}),
    ("chat.completions", {"max_tokens": 5}, "o3", None),
    ("chat.completions", {"max_completion_tokens": 5}, "o3", None),
    ("responses", {"input": "x"}, "gpt-5", {"input": "x", "max_output_tokens": 9}),
    ("responses", {"max_output_tokens": 7}, "gpt-5", None),
    ("generateContent", {"contents": []}, "gemini-2.5-pro",
     {"contents": [], "generationConfig": {"maxOutputTokens": 9}}),
    ("streamGenerateContent", {"generation_config": {"temperature": 1,
                                                     "max_output_tokens": 0}}, None,
     {"generation_config": {"temperature": 1, "maxOutputTokens": 9}}),
    ("generateContent", {"generationConfig": {"maxOutputTokens": "12"}}, None, None),
    ("generateContent", {"generationConfig": {"max_output_tokens": 12}}, None, None),
    ("generateContent", {"generationConfig": [None]}, None, None),   # (found by the fuzzer)
    ("generateContent", {"generationConfig": None}, None,
     {"generationConfig": {"maxOutputTokens": 9}}),
    ("messages", {"max_tokens": 5}, "claude", None),
    ("completions", {"prompt": "x"}, "gpt-3.5-turbo-instruct", None),
    ("embeddings", {"input": "x"}, None, None),
])
def test_a_bound_is_written_only_where_none_is_named(
        endpoint: str, doc: dict[str, Any], model: str | None,
        want: dict[str, Any] | None) -> None:
    before = repr(doc)
    assert bounded(endpoint, doc, 9, model) == want
    assert repr(doc) == before            # the request as read is left as it was
