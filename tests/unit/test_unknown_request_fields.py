"""A prompt's parts and fields of a kind the adapters do not know (a content part type or a
message field newer than this code, a Gemini part key) have every string read, ids and
payloads aside, as replies' are: a text there is masked or refused, never passed unread
because the API grew. Data such a part carries is an input no guard reads
(`providers.unread`, kind "file")."""

from __future__ import annotations

import json
from typing import Any

import pytest

from extproc.providers.endpoints import classify
from extproc.reading import canonical_target
from tests.leak_prompts import ENDPOINTS, GEMINI
from tests.leaks import EMAILS, KEYS
from tests.unit.test_no_leaks import run

CHAT_EP = next(e for e in ENDPOINTS if e.path == "/v1/chat/completions")
GEMINI_EP = next(e for e in ENDPOINTS if e.path == f"{GEMINI}:generateContent")


def chat_part(part: dict[str, Any]) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, part]}]}


def chat_field(key: str, value: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": "hi", key: value}]}


def gemini_part(part: dict[str, Any]) -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": "hi"}, part]}]}


#: (id, endpoint, build(text) -> body, where the text lands in what goes upstream)
CASES = [
    ("chat-part-kind", CHAT_EP, lambda t: chat_part({"type": "input_note", "note": t}),
     lambda b: b["messages"][0]["content"][1]["note"]),
    ("chat-part-nested", CHAT_EP,
     lambda t: chat_part({"type": "input_note", "note": {"lines": ["a", t]}}),
     lambda b: b["messages"][0]["content"][1]["note"]["lines"][1]),
    ("chat-part-untyped", CHAT_EP, lambda t: chat_part({"text": t}),
     lambda b: b["messages"][0]["content"][1]["text"]),
    ("chat-part-malformed-type", CHAT_EP, lambda t: chat_part({"type": ["text"], "text": t}),
     lambda b: b["messages"][0]["content"][1]["text"]),
    ("chat-message-field", CHAT_EP, lambda t: chat_field("memo", {"text": t}),
     lambda b: b["messages"][0]["memo"]["text"]),
    ("gemini-part-key", GEMINI_EP, lambda t: gemini_part({"noteLater": {"body": t}}),
     lambda b: b["contents"][0]["parts"][1]["noteLater"]["body"]),
]
IDS = [c[0] for c in CASES]


def wrapped(endpoint: Any, body: dict[str, Any]) -> bytes:
    return json.dumps(endpoint.wrap(body)).encode()


@pytest.mark.parametrize(("case", "endpoint", "build", "where"), CASES, ids=IDS)
def test_a_text_in_an_unknown_part_or_field_is_masked(case: str, endpoint: Any, build: Any,
                                                      where: Any) -> None:
    out = run(endpoint, wrapped(endpoint, build(f"write to {EMAILS[0]} now")))
    assert out.refused is None, out.refused
    assert EMAILS[0].encode() not in out.upstream
    assert where(json.loads(out.upstream)) == "write to <EMAIL> now"


@pytest.mark.parametrize(("case", "endpoint", "build", "where"), CASES, ids=IDS)
def test_a_key_in_an_unknown_part_or_field_is_refused(case: str, endpoint: Any, build: Any,
                                                      where: Any) -> None:
    out = run(endpoint, wrapped(endpoint, build(f"key {KEYS[0]}")))
    assert out.refused is not None and out.refused[0] == 400
    assert b"aws access key" in out.refused[1] and KEYS[0].encode() not in out.refused[1]


def test_ids_and_payloads_of_an_unknown_part_or_field_are_not_read_as_text() -> None:
    part = {"type": "input_note", "id": EMAILS[0], "note": "plain"}
    out = run(CHAT_EP, wrapped(CHAT_EP, chat_part(part)))
    assert out.refused is None
    assert json.loads(out.upstream)["messages"][0]["content"][1] == part
    body = chat_field("id", EMAILS[0])   # a message's own id, as some clients send back
    out = run(CHAT_EP, wrapped(CHAT_EP, body))
    assert out.refused is None and json.loads(out.upstream)["messages"][0]["id"] == EMAILS[0]


def test_data_an_unknown_part_carries_is_an_unread_input() -> None:
    adapter = classify("openai", "POST", canonical_target(CHAT_EP.path)).adapter
    body = CHAT_EP.wrap(chat_part({"type": "input_video", "data": "AAAA", "caption": "x"}))
    assert adapter.unread_inputs(body) == [("user", "file")]
    assert adapter.unread_inputs(CHAT_EP.wrap(chat_part({"type": "input_note",
                                                         "note": "x"}))) == []
