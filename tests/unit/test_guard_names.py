"""The identifiers the guards read in a request (`extproc.guards.names`): every tool,
function and MCP server name, wherever it sits and however its key is spelled in JSON, and
the byte check that lets a body without any skip the walk."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.guards.names import identifiers, readings


def test_names_in_every_tool_place_are_found() -> None:
    body = {"model": "m", "tools": [{"type": "function", "function": {
        "name": "send_mail", "parameters": {"type": "object",
                                           "properties": {"name": {"type": "string"}}}}}],
            "tool_choice": {"type": "function", "function": {"name": "send_mail"}},
            "messages": [{"role": "assistant", "tool_calls": [
                {"id": "c", "function": {"name": "lookup", "arguments": "{}"}}]}],
            "mcp": [{"server_label": "crm", "allowed_tools": ["a", {"x": 1}, "b"]}],
            "toolConfig": {"functionCallingConfig": {"allowedFunctionNames": ["g"]}}}
    assert sorted(identifiers(body)) == sorted(
        ["send_mail", "send_mail", "lookup", "crm", "a", "b", "g"])


def test_underscores_are_read_as_word_breaks_too() -> None:
    assert readings({"name": "lookup_4111111111111111"}) == [
        (None, "lookup_4111111111111111"), (None, "lookup 4111111111111111")]
    assert readings({"name": "plain"}) == [(None, "plain")]


def test_a_key_spelled_with_escapes_is_found_through_the_byte_check() -> None:
    raw = b'{"tools": [{"n\\u0061me": "AKIAIOSFODNN7EXAMPLE"}]}'
    doc = json.loads(raw)
    assert readings(doc, raw) == [(None, "AKIAIOSFODNN7EXAMPLE")]
    assert readings({"messages": [{"role": "user", "content": "hi"}]},
                    b'{"messages": [{"role": "user", "content": "hi"}]}') == []


keys = st.sampled_from(["name", "server_label", "server_name", "allowedFunctionNames",
                        "allowed_function_names", "allowed_tools", "tool_names", "content",
                        "role", "args", "nam", "Name"])
docs = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=25)


@settings(max_examples=400, deadline=None)
@given(doc=st.dictionaries(keys, docs, max_size=5), ascii_only=st.booleans(),
       indent=st.sampled_from([None, 1]))
def test_the_byte_check_never_skips_a_body_that_holds_a_name(doc: dict[str, Any],
                                                            ascii_only: bool,
                                                            indent: int | None) -> None:
    raw = json.dumps(doc, ensure_ascii=ascii_only, indent=indent).encode()
    assert readings(doc, raw) == readings(doc)
