"""The output bound token and spend budgets write into a request naming none
(`limits.bound`): the reservation is what the provider may generate."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from extproc.limits.bound import bounded, write
from extproc.providers import adapter_for


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
    # (found by this stop's review) a "0" is Gemini's unset too; both spellings each get it;
    # Gemini takes at most 65536; a 0 max_tokens goes, not left beside the bound
    ("generateContent", {"generationConfig": {"maxOutputTokens": "0"}}, None,
     {"generationConfig": {"maxOutputTokens": 9}}),
    ("generateContent", {"generationConfig": {"temperature": 1},
                         "generation_config": {"max_output_tokens": 0}}, None,
     {"generationConfig": {"temperature": 1, "maxOutputTokens": 9},
      "generation_config": {"maxOutputTokens": 9}}),
    ("chat.completions", {"max_tokens": 0}, "o3", {"max_completion_tokens": 9}),
    ("chat.completions", {}, "gpt-35-turbo", {"max_tokens": 9}),
    ("generateContent", {"generationConfig": [None]}, None, None),   # (found by the fuzzer)
    ("generateContent", {"generationConfig": None}, None,
     {"generationConfig": {"maxOutputTokens": 9}}),
    ("messages", {"max_tokens": 5}, "claude", None),
    # legacy completions: OpenAI's default written (an OpenAI-compatible server's may be
    # the rest of the context); a 0 (echo only) is named
    ("completions", {"prompt": "x"}, "gpt-3.5-turbo-instruct", {"prompt": "x", "max_tokens": 9}),
    ("completions", {"prompt": "x", "max_tokens": None}, None, {"prompt": "x", "max_tokens": 9}),
    ("completions", {"prompt": "x", "max_tokens": 0}, None, None),
    ("completions", {"prompt": "x", "max_tokens": 5}, None, None),
    ("embeddings", {"input": "x"}, None, None),
])
def test_a_bound_is_written_only_where_none_is_named(
        endpoint: str, doc: dict[str, Any], model: str | None,
        want: dict[str, Any] | None) -> None:
    before = repr(doc)
    assert bounded(endpoint, doc, 9, model) == want
    assert repr(doc) == before            # the request as read is left as it was


# --- the bound put in front of the body, against the body read and written again ---------

_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6)
                       | st.text(max_size=8),
                       lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
_FIELDS = {"max_tokens", "max_completion_tokens", "max_output_tokens", "generationConfig",
           "generation_config"}
_DOCS = st.dictionaries(st.text(max_size=8).filter(lambda k: k not in _FIELDS), _VALUES,
                        max_size=5)


@given(endpoint=st.sampled_from(["chat.completions", "completions", "responses",
                                 "generateContent", "streamGenerateContent"]),
       doc=_DOCS, model=st.sampled_from([None, "gpt-4o", "o3"]),
       pretty=st.booleans(), lead=st.sampled_from(["", " ", "\n\t "]))
def test_the_bound_put_in_front_is_the_bound_written_again(
        endpoint: str, doc: dict[str, Any], model: str | None, pretty: bool,
        lead: str) -> None:
    """`write` skips the second parse and dump where the request has none of the fields:
    what it sends reads as what `bounded` would have written."""
    body = (lead + json.dumps(doc, indent=2 if pretty else None)).encode()
    ex = SimpleNamespace(endpoint=SimpleNamespace(name=endpoint), state={},
                         request_headers={":path": ""})
    out = write(ex, adapter_for("openai"), body, doc, 9, model)  # type: ignore[arg-type]
    assert out is not None and out.endswith(body.lstrip()[1:])     # the body kept as it was
    assert json.loads(out) == bounded(endpoint, doc, 9, model)


def test_gemini_is_sent_at_most_what_it_takes() -> None:
    big = 65536 + 24576
    assert bounded("generateContent", {}, big, None) == {
        "generationConfig": {"maxOutputTokens": 65536}}
    ex = SimpleNamespace(endpoint=SimpleNamespace(name="generateContent"), state={},
                         request_headers={":path": ""})
    out = write(ex, adapter_for("gemini"), b"{}", {}, big, None)  # type: ignore[arg-type]
    assert json.loads(out or b"") == {"generationConfig": {"maxOutputTokens": 65536}}


def test_a_lone_surrogate_stays_escaped_when_the_body_is_written_again() -> None:
    """(found by this stop's review: a 500 for a JavaScript client's cut emoji)"""
    body = b'{"messages":[{"role":"user","content":"x \\ud83d y"}],"max_tokens":null}'
    doc = json.loads(body)
    ex = SimpleNamespace(endpoint=SimpleNamespace(name="chat.completions"), state={},
                         request_headers={":path": "/v1/chat/completions"})
    out = write(ex, adapter_for("openai"), body, doc, 9, "o3")  # type: ignore[arg-type]
    assert out is not None and b"\\ud83d" in out
    assert json.loads(out)["max_completion_tokens"] == 9
