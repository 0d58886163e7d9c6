"""Vertex's streamed function call arguments (`functionCall.partialArgs`, the guard audit's
second finding) are read: each argument's string pieces, joined across events, are masked
exactly as the whole text, whatever the pieces and the bytes' chunking, an argument's held
tail goes out in the event that ends it, and a whole reply (a JSON-array stream read
whole) reads them too."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.codecs.sse import SSEDecoder
from extproc.guards.scanner import Scanner, builtin
from extproc.guards.webhook_held import ends_piece, read_event
from extproc.providers.google import GoogleAdapter
from tests.unit.test_guard_content_parts import run as run_masked

SCANNER = Scanner(builtin(["email", "card"]))
ADAPTER = GoogleAdapter("vertex")
PATHS = ("$.to", "$.note")


def element(call: dict[str, Any], finish: bool = False) -> dict[str, Any]:
    candidate: dict[str, Any] = {"index": 0, "content": {
        "role": "model", "parts": [{"functionCall": call}]}}
    if finish:
        candidate["finishReason"] = "STOP"
    return {"candidates": [candidate], "modelVersion": "gemini-3-pro-preview"}


def arg(path: str, piece: str, more: bool, snake: bool = False) -> dict[str, Any]:
    keys = ("json_path", "string_value", "will_continue") if snake else \
        ("jsonPath", "stringValue", "willContinue")
    out: dict[str, Any] = {keys[0]: path, keys[1]: piece}
    if more:
        out[keys[2]] = True
    return out


def stream(pieces: list[tuple[str, str, bool]], snake: bool = False) -> bytes:
    """The call's name, then one element per (path, piece, more), then the finish."""
    docs = [element({"name": "send", "willContinue": True})]
    docs += [element({"partialArgs": [arg(p, t, m, snake)], "willContinue": True})
             for p, t, m in pieces]
    docs.append(element({}, finish=True))
    return b"".join(b"data: " + json.dumps(d).encode() + b"\r\n\r\n" for d in docs)


def run(raw: bytes, cuts: list[int], action: str = "mask") -> bytes:
    return run_masked(raw, cuts, action, "vertex")


def args_of(raw: bytes) -> list[tuple[str, str, bool]]:
    """(path, piece, more) of every streamed argument piece the client gets."""
    decoder = SSEDecoder(1 << 20)
    out = []
    for ev in decoder.feed(raw) + decoder.finish():
        for cand in json.loads(ev.data).get("candidates", []):
            for part in cand["content"]["parts"]:
                for a in part.get("functionCall", {}).get("partialArgs", []):
                    out.append((a.get("jsonPath", a.get("json_path")),
                                a.get("stringValue", a.get("string_value")),
                                bool(a.get("willContinue", a.get("will_continue")))))
    return out


_WORDS = st.sampled_from(["write ", "to ", "jane.roe@example.org", " card ",
                          "4111 1111 1111 1111", "x", "@", ".", "Boston", "\n"])


@settings(max_examples=150, deadline=None)
@given(texts=st.tuples(st.lists(_WORDS, min_size=1, max_size=8).map("".join),
                       st.lists(_WORDS, min_size=1, max_size=8).map("".join)),
       data=st.data(), snake=st.booleans())
def test_each_argument_is_masked_as_its_whole_text(texts: tuple[str, str],
                                                   data: st.DataObject, snake: bool) -> None:
    """Two arguments, each cut into pieces at any points, their pieces interleaved as the
    model streams them, the bytes cut anywhere: each argument's pieces join to its text
    masked as a whole, and the piece that ends an argument carries all that was held."""
    queues = []
    for path, text in zip(PATHS, texts, strict=True):
        points = sorted(set(data.draw(st.lists(st.integers(1, max(1, len(text) - 1)),
                                               max_size=5))))
        cut = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
        queues.append([(path, piece, i < len(cut) - 1) for i, piece in enumerate(cut)])
    order = data.draw(st.permutations([0] * len(queues[0]) + [1] * len(queues[1])))
    pieces = [queues[q].pop(0) for q in order]
    raw = stream(pieces, snake)
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=12))
    got = args_of(run(raw, cuts))
    for path, text in zip(PATHS, texts, strict=True):
        mine = [(piece, more) for p, piece, more in got if p == path]
        assert "".join(piece for piece, _ in mine) == SCANNER.mask(text)
        assert [more for _, more in mine][-1] is False   # the tail went out in the end
        for start in ("jane.roe", "4111"):   # no piece holds the start of a masked value
            if start not in SCANNER.mask(text):
                assert all(start not in piece for piece, _ in mine)


def test_a_held_tail_goes_out_in_the_piece_that_ends_the_argument() -> None:
    raw = stream([("$.to", "write jane.roe@exa", True), ("$.to", "mple.org Boston", False)])
    assert args_of(run(raw, [])) == [("$.to", "write ", True),
                                     ("$.to", "<EMAIL> Boston", False)]


def test_a_reject_guard_ends_the_stream_before_the_value() -> None:
    raw = stream([("$.to", "my card 4111 11", True), ("$.to", "11 1111 1111 ok", False)])
    out = run(raw, [], action="reject")
    assert b"4111" not in out and b'"SAFETY"' in out and b"card" in out


def test_a_number_argument_is_read_whole() -> None:
    doc = element({"partialArgs": [{"jsonPath": "$.n", "numberValue": 4111111111111111}]})
    raw = b"data: " + json.dumps(doc).encode() + b"\r\n\r\n"
    assert b"4111111111111111" not in run(raw, [])


def test_a_whole_reply_reads_streamed_arguments() -> None:
    body = element({"partialArgs": [arg("$.to", "jane.roe@example.org", False),
                                    {"jsonPath": "$.n", "numberValue": 4111111111111111}]})
    texts = [t for _, t in ADAPTER.response_texts(body)]
    assert "jane.roe@example.org" in texts and "4111111111111111" in texts


def test_a_webhook_stream_guard_sees_an_argument_end() -> None:
    """The webhook stream guard checks what it held when a piece ends: an argument's last
    piece ends it, not only the candidate's finish."""
    decoder = SSEDecoder(1 << 20)
    [ev] = decoder.feed(stream([("$.to", "hi", False)]).split(b"\r\n\r\n")[1] + b"\r\n\r\n")
    held, ends, _ = read_event(ADAPTER, ev, iter(range(99)), frozenset())
    assert ends and ends_piece(held, (0, "partial:$.to", 0))
    assert not ends_piece(held, (0, "text", 0))
