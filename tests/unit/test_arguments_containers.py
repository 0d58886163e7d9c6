"""Tool-call arguments holding very many JSON objects and arrays (found by review): the
request body's own cap (`reading.MAX_CONTAINERS`) counts the containers outside strings,
while the guards read a call's `arguments` string as JSON source, token by token: 6 MB of
`{},` there held the event loop about 5 s (pure build). Past `MAX_SOURCE_CONTAINERS` such
arguments are refused: a 413 for a request, a 502 for a reply; brackets inside the
arguments' own strings (code a tool writes) do not count."""

from __future__ import annotations

import json
from typing import Any

import pytest

from extproc.codecs.jsontext import MAX_SOURCE_CONTAINERS, SourceTooLarge, checked_source
from extproc.policy import Reject
from tests.unit.test_guard_fields import whole
from tests.unit.test_unread_inputs import CHAT, config, run


def _call(arguments: str) -> dict[str, Any]:
    return {"model": "m", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f",
                                                         "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": "c", "content": "ok"}]}


def test_arguments_of_more_containers_than_a_body_may_hold_are_refused() -> None:
    args = "[" + "{}," * MAX_SOURCE_CONTAINERS + "{}]"
    _, refused = run(config(), "openai", CHAT, _call(args))
    assert refused is not None and refused[0] == 413, refused


def test_arguments_within_the_bound_are_read_and_masked() -> None:
    args = json.dumps({"to": "john@example.com", "rows": [{}] * 1000})
    sent, refused = run(config(), "openai", CHAT, _call(args))
    assert refused is None and b"john@example.com" not in sent


def test_brackets_inside_the_arguments_strings_do_not_count() -> None:
    code = "{[" * (MAX_SOURCE_CONTAINERS + 5)
    text = json.dumps({"file": "a.py", "content": code})
    assert checked_source(text) == text
    with pytest.raises(SourceTooLarge):
        checked_source("[" + "[]," * MAX_SOURCE_CONTAINERS + "[]]")


def test_a_reply_with_such_arguments_is_refused() -> None:
    args = "[" + "{}," * MAX_SOURCE_CONTAINERS + "{}]"
    body = {"id": "c", "object": "chat.completion", "model": "m", "choices": [
        {"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": None, "tool_calls": [
                {"id": "t", "type": "function", "function": {"name": "f",
                                                             "arguments": args}}]}}]}
    with pytest.raises(Reject) as refused:
        whole("openai", "mask", body)
    assert refused.value.status == 502
