"""Found by review (resource exhaustion): a masking stream guard keeps, per open piece, its
maskers and its last event, until the piece or the stream ends; an upstream naming a new
index in every event (a hostile or broken OpenAI-compatible server; a request that did not
say `n` refuses index 1 at once, `event_stream.unasked`) grew them without bound. Past
`MAX_OPEN_PIECES` open at once the stream ends refused, as an unreadable event ends it;
pieces that end free their place."""

from __future__ import annotations

import json

from extproc.guards.event_stream import MAX_OPEN_PIECES
from extproc.guards.reframe import SSEMaskingReframer
from extproc.guards.reframe_responses import ResponsesMaskingReframer
from extproc.guards.scanner import Scanner, builtin
from extproc.guards.stream import StreamMasker

SCANNER = Scanner(builtin(["email", "phone"]))


def _guard() -> SSEMaskingReframer:
    return SSEMaskingReframer("openai", lambda: [StreamMasker(SCANNER, action="mask")],
                              1 << 20)


def _event(index: int, text: str, finish: str | None = None) -> bytes:
    doc = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
           "choices": [{"index": index, "delta": {"content": text},
                        "finish_reason": finish}]}
    return b"data: " + json.dumps(doc, separators=(",", ":")).encode() + b"\n\n"


def test_an_upstream_opening_piece_after_piece_is_refused_past_the_bound() -> None:
    guard = _guard()
    out = b""
    for i in range(MAX_OPEN_PIECES + 50):
        out += guard.feed(_event(i, "x"))
        if guard.stopped:
            break
    assert guard.stopped and len(guard.chains) <= MAX_OPEN_PIECES
    assert b"more than 1024 choices" in out
    # every event before it went out (its text held: a masker holds what could still grow)
    assert all(b'"index":%d,' % i in out for i in range(MAX_OPEN_PIECES))


def test_pieces_that_end_free_their_place() -> None:
    guard = _guard()
    for i in range(MAX_OPEN_PIECES + 50):
        guard.feed(_event(i, "x", "stop"))
    assert not guard.stopped and len(guard.chains) <= 1


def _delta(index: int, text: str) -> bytes:
    doc = {"type": "response.output_text.delta", "item_id": f"msg_{index}",
           "output_index": index, "content_index": 0, "delta": text,
           "sequence_number": index}
    return b"event: response.output_text.delta\ndata: " + json.dumps(doc).encode() + b"\n\n"


def test_a_responses_stream_opening_piece_after_piece_is_refused_too() -> None:
    """(found by the review of the bound: the Responses API's guard keeps its own pieces)"""
    guard = ResponsesMaskingReframer("openai", lambda: [StreamMasker(SCANNER, action="mask")],
                                     1 << 20)
    out = b""
    for i in range(MAX_OPEN_PIECES + 200):
        out += guard.feed(_delta(i, "x"))
        if guard.stopped:
            break
    assert guard.stopped and len(guard.chains) <= MAX_OPEN_PIECES
    assert b"more than 1024 choices" in out
