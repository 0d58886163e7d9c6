"""Texts and inputs of the Responses API a review found unread (2026-12-06).

Output items of a kind the code models (message, reasoning) were read by their modelled
fields only: a content part of a kind newer than the code (or an OpenAI-compatible
server's plain `text` part), content given as a string, a field of their own went out
unmasked, in whole replies and in a stream's `output_item.done` and `response.completed`
(items of unknown kinds are read whole). Now every string of them is read. And a hosted
tool's existing container given by id (the code interpreter's `container: "cntr_..."`, a
shell's `container_reference`) holds files no guard read, like its `file_ids`."""
from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from extproc.guards.reframe_responses import ResponsesMaskingReframer
from extproc.guards.scanner import Scanner, builtin
from extproc.guards.stream import StreamMasker
from extproc.providers.openai_responses import OpenAIResponsesAdapter
from tests.unit.test_unread_inputs import config, run, said

SCANNER = Scanner(builtin(["email", "phone", "card"]))
EMAIL = "jane.roe@example.org"


def _mask(text: str) -> str:
    m = StreamMasker(SCANNER, action="mask")
    return m.feed(text) + m.finish()


def _event(doc: dict[str, Any]) -> bytes:
    return f"event: {doc['type']}\ndata: {json.dumps(doc)}\n\n".encode()


def _stream(raw: bytes) -> bytes:
    t = ResponsesMaskingReframer("openai", lambda: [StreamMasker(SCANNER, action="mask")],
                                 1 << 20)
    return t.feed(raw) + t.finish()


# output items of a kind the code models (message, reasoning) are read by their modelled
# fields only; anything else they carry (a content part of a kind newer than the code or an
# OpenAI-compatible server's, content as a plain string, a field of their own) goes out
# unread, in whole replies and in a stream's output_item.done and response.completed, while
# an item of an unknown kind is read whole and a chat message's unknown fields are too
TEXT = f"write to {EMAIL}"
ITEMS = {
    "part-of-unknown-kind": {"id": "msg_1", "type": "message", "status": "completed",
                             "role": "assistant",
                             "content": [{"type": "output_text_v2", "text": TEXT}]},
    "plain-text-part": {"id": "msg_1", "type": "message", "role": "assistant",
                        "content": [{"type": "text", "text": TEXT}]},
    "string-content": {"id": "msg_1", "type": "message", "role": "assistant",
                       "content": TEXT},
    "reasoning-field": {"id": "rs_1", "type": "reasoning", "summary": [], "text": TEXT},
}


@pytest.mark.parametrize("name", list(ITEMS))
def test_whole_reply_every_text_of_a_known_item_is_read(name: str) -> None:
    body = {"id": "resp_1", "object": "response", "status": "completed",
            "output": [copy.deepcopy(ITEMS[name])],
            "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2}}
    OpenAIResponsesAdapter("openai").rewrite_response_texts(body, _mask)
    assert EMAIL not in json.dumps(body) and "write to <EMAIL>" in json.dumps(body)


@pytest.mark.parametrize("name", list(ITEMS))
def test_streamed_item_done_and_completed_every_text_of_a_known_item_is_read(
        name: str) -> None:
    raw = b"".join(_event(d) for d in (
        {"type": "response.output_item.done", "output_index": 0, "sequence_number": 1,
         "item": copy.deepcopy(ITEMS[name])},
        {"type": "response.completed", "sequence_number": 2,
         "response": {"id": "r", "object": "response", "status": "completed",
                      "output": [copy.deepcopy(ITEMS[name])],
                      "usage": {"input_tokens": 1, "output_tokens": 1,
                                "total_tokens": 2}}}))
    out = _stream(raw)
    assert EMAIL.encode() not in out and out.count(b"write to <EMAIL>") == 2


# --- a hosted tool's existing container, by id: its files reach the model unread --------

CONTAINER_BY_ID = [
    # the code interpreter in a container made earlier (files uploaded to it with
    # POST /v1/containers/{id}/files, or left by earlier runs)
    {"type": "code_interpreter", "container": "cntr_68a1b2c3d4e5"},
    # the hosted shell tool in an existing container
    {"type": "shell", "environment": {"type": "container_reference",
                                      "container_id": "cntr_68a1b2c3d4e5"}},
]


@pytest.mark.parametrize("tool", CONTAINER_BY_ID, ids=["code-interpreter", "shell"])
def test_a_container_by_id_is_an_unread_input_like_its_file_ids(tool: dict[str, Any]) -> None:
    body = {"model": "gpt-4o-mini", "input": [said()], "tools": [tool]}
    # the same tool given `container: {"type": "auto", "file_ids": [...]}` is refused
    _, refused = run(config(), "openai", "/v1/responses", body)
    assert refused is not None, "a container's files reached the model past guard 'pii'"
    fresh = {**body, "tools": [{"type": "code_interpreter", "container": {"type": "auto"}}]}
    assert run(config(), "openai", "/v1/responses", fresh)[1] is None   # a new one: none
