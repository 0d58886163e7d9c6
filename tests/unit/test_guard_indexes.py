"""Indexes a client reads as another's: the OpenAI and Anthropic SDKs index their lists of
choices and content blocks with an event's `index` (so `-1` is the last one, and `true` or
`"1"`, which their models coerce, the second), and the Responses SDK its parts with
`content_index`. A masker that kept such a piece apart from the one the client joins it to
would mask two halves of a value the client reads whole. Such an event ends the stream
refused, as any unreadable event does; the halves never reach the client together."""

from __future__ import annotations

import json
from typing import Any

import pytest

from extproc.guards.reframe import SSEMaskingReframer
from extproc.guards.reframe_responses import ResponsesMaskingReframer
from extproc.guards.scanner import Scanner, builtin
from extproc.guards.stream import StreamMasker
from extproc.providers.slots import BadIndex, index_value

SCANNER = Scanner(builtin(["email"]))
HEAD = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}


def sse(*docs: dict[str, Any], event: bool = False) -> bytes:
    return b"".join((f"event: {d['type']}\n" if event else "").encode()
                    + b"data: " + json.dumps(d).encode() + b"\n\n" for d in docs)


def chat(index: Any, text: str, finish: str | None = None) -> dict[str, Any]:
    return {**HEAD, "choices": [{"index": index, "delta": {"content": text},
                                 "finish_reason": finish}]}


def run(t: Any, raw: bytes) -> bytes:
    return t.feed(raw) + t.finish()


def masker() -> list[StreamMasker]:
    return [StreamMasker(SCANNER)]


BAD = [-1, True, "1", 1.5, [0]]


@pytest.mark.parametrize("bad", BAD, ids=repr)
def test_openai_choice_index(bad: Any) -> None:
    raw = sse(chat(0, "write to jane.roe"), chat(0, "", "stop"), chat(bad, "@example.org now"))
    out = run(SSEMaskingReframer("openai", masker, 1 << 20), raw)
    assert b"example.org" not in out and b"content_filter" in out, out
    assert b"jane.roe" not in out or b"@" not in out


@pytest.mark.parametrize("bad", BAD, ids=repr)
def test_anthropic_block_index(bad: Any) -> None:
    raw = sse({"type": "content_block_start", "index": 0,
               "content_block": {"type": "text", "text": ""}},
              {"type": "content_block_delta", "index": 0,
               "delta": {"type": "text_delta", "text": "write to jane.roe"}},
              {"type": "content_block_stop", "index": 0},
              {"type": "content_block_delta", "index": bad,
               "delta": {"type": "text_delta", "text": "@example.org now"}}, event=True)
    out = run(SSEMaskingReframer("anthropic", masker, 1 << 20), raw)
    assert b"example.org" not in out and b"event: error" in out, out


@pytest.mark.parametrize("bad", BAD, ids=repr)
def test_responses_content_index(bad: Any) -> None:
    def delta(ci: Any, text: str) -> dict[str, Any]:
        return {"type": "response.output_text.delta", "item_id": "m", "output_index": 0,
                "content_index": ci, "delta": text}
    raw = sse(delta(0, "write to jane.roe"),
              {"type": "response.output_text.done", "item_id": "m", "output_index": 0,
               "content_index": 0, "text": "write to jane.roe"},
              delta(bad, "@example.org now"), event=True)
    t = ResponsesMaskingReframer("openai", masker, 1 << 20)
    out = run(t, raw)
    assert b"example.org" not in out and b"response.incomplete" in out, out


def test_readable_indexes_read_as_clients_read_them() -> None:
    assert [index_value(v) for v in (None, 0, 3, 2.0)] == [0, 0, 3, 2]
    for bad in BAD:
        with pytest.raises(BadIndex):
            index_value(bad)
    # a readable second choice is its own piece, masked on its own, and passes
    raw = sse(chat(0, "hello "), chat(1, "mail jane.roe@example.org"), chat(1.0, " ok"))
    out = run(SSEMaskingReframer("openai", masker, 1 << 20), raw)
    assert b"<EMAIL>" in out and b"content_filter" not in out and b"ok\"" in out, out
