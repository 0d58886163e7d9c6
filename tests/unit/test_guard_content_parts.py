"""Streamed chat text fields given as lists of parts (the guard audit's fourth finding:
OpenAI-compatible servers behind Azure's /openai/v1 stream `content` so) are read, never
skipped: a choice's text is masked as one text across events whatever form each event
gives it (a string, text parts, string parts), for any chunking; a part carrying data no
guard reads ends the stream refused; whole replies read the same shapes."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.codecs.sse import SSEDecoder
from extproc.guards.reframe import SSEMaskingReframer
from extproc.guards.scanner import Scanner, builtin
from extproc.guards.stream import StreamMasker
from extproc.providers.openai import OpenAIAdapter

SCANNER = Scanner(builtin(["email", "card"]))


def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    doc = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
           "choices": [{"index": 0, "delta": delta, "logprobs": None,
                        "finish_reason": finish}]}
    return b"data: " + json.dumps(doc).encode() + b"\n\n"


FORMS = {
    "string": lambda t: t,
    "text-part": lambda t: [{"type": "text", "text": t}],
    "string-part": lambda t: [t],
    "two-parts": lambda t: [{"type": "text", "text": t[:len(t) // 2]},
                            {"type": "text", "text": t[len(t) // 2:]}],
}


def run(raw: bytes, cuts: list[int], action: str = "mask", provider: str = "openai") -> bytes:
    """`raw` cut at `cuts`, through the e-mail and card maskers (or rejecters)."""
    t = SSEMaskingReframer(provider, lambda: [StreamMasker(SCANNER, action=action)], 1 << 20)
    points = sorted({c % (len(raw) + 1) for c in cuts})
    out, last = [], 0
    for p in [*points, len(raw)]:
        out.append(t.feed(raw[last:p]))
        last = p
    return b"".join(out) + t.finish()


def content(raw: bytes, key: str = "content") -> str:
    """The choice's text as a client joins it, whatever form each event gives it."""
    decoder = SSEDecoder(1 << 20)
    text = ""
    for ev in decoder.feed(raw) + decoder.finish():
        if ev.data.strip() == "[DONE]":
            continue
        for choice in json.loads(ev.data).get("choices", []):
            value = choice["delta"].get(key)
            for part in value if isinstance(value, list) else [value]:
                text += part if isinstance(part, str) else (part or {}).get("text", "")
    return text


_WORDS = st.sampled_from(["write ", "to ", "jane.roe@example.org", " card ",
                          "4111 1111 1111 1111", "x", "@", ".", "ok"])


@settings(max_examples=200, deadline=None)
@given(words=st.lists(_WORDS, min_size=1, max_size=10), data=st.data(),
       key=st.sampled_from(["content", "refusal", "reasoning_content"]))
def test_a_text_in_parts_is_masked_as_its_whole_text(words: list[str], data: st.DataObject,
                                                     key: str) -> None:
    text = "".join(words)
    points = sorted(set(data.draw(st.lists(st.integers(1, len(text)), max_size=6))))
    pieces = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    forms = data.draw(st.lists(st.sampled_from(sorted(FORMS)), min_size=len(pieces),
                               max_size=len(pieces)))
    raw = chunk({"role": "assistant", key: ""}) + b"".join(
        chunk({key: FORMS[form](piece)}) for form, piece in zip(forms, pieces, strict=True)
        if piece) + chunk({}, "stop") + b"data: [DONE]\n\n"
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=10))
    out = run(raw, cuts)
    assert content(out, key) == SCANNER.mask(text)
    if "jane.roe@example.org" in text and "jane.roe@example.org" not in SCANNER.mask(text):
        assert b"jane.roe" not in out


def test_a_reject_guard_ends_a_stream_of_parts_before_the_value() -> None:
    raw = chunk({"content": [{"type": "text", "text": "card 4111 1111"}]}) + chunk(
        {"content": [{"type": "text", "text": " 1111 1111 ok"}]}) + chunk({}, "stop")
    out = run(raw, [], action="reject")
    assert b"4111" not in out and b"content_filter" in out


def test_what_is_held_goes_out_as_a_part_when_the_stream_sends_parts() -> None:
    raw = chunk({"content": [{"type": "text", "text": "write to jane.roe@exa"}]}) + chunk(
        {"content": [{"type": "text", "text": "mple.org ok"}]}) + chunk({}, "stop")
    events = [json.loads(line[6:]) for line in run(raw, []).split(b"\n\n") if line]
    contents = [e["choices"][0]["delta"].get("content") for e in events]
    assert contents[:2] == [[{"type": "text", "text": "write to "}],
                            [{"type": "text", "text": "<EMAIL> "}]]
    assert contents[2] == [{"type": "text", "text": "ok"}]   # held, sent before the stop


def test_a_part_carrying_an_image_ends_the_stream_refused() -> None:
    raw = chunk({"content": [{"type": "image_url", "image_url": {
        "url": "data:image/png;base64,iVBORw0KGgo="}}]}) + chunk({}, "stop")
    out = run(raw, [])
    assert b"iVBORw0KGgo" not in out and b"image" in out and b"content_filter" in out


def test_a_whole_reply_reads_parts_and_objects_in_every_text_field() -> None:
    adapter = OpenAIAdapter("openai")
    for message in ({"content": [{"type": "text", "text": "jane.roe@example.org"}]},
                    {"content": {"type": "text", "text": "jane.roe@example.org"}},
                    {"refusal": [{"type": "refusal", "refusal": "jane.roe@example.org"}]},
                    {"reasoning_content": [{"type": "text", "text": "jane.roe@example.org"}]},
                    {"reasoning": {"text": "jane.roe@example.org"}}):
        body = {"choices": [{"index": 0, "message": {"role": "assistant", **message}}]}
        assert "jane.roe@example.org" in [t for _, t in adapter.response_texts(body)], message
        assert adapter.rewrite_response_texts(body, lambda t: t.replace("jane", "<X>"))
        assert "jane" not in json.dumps(body)


def test_a_rest_event_of_a_parts_other_strings_reads_as_their_piece() -> None:
    """The held rest of a part's other strings (a thinking part's text, a refusal given as
    an object: piece (index, key, 1)) goes out in a part of their kind, so that it reads as
    that piece again, not as the field's text (found by the mutated-events property)."""
    from extproc.providers import adapter_for
    adapter = adapter_for("openai")
    doc = {"choices": [{"delta": {"refusal": {"usage": "message_start"}}}]}
    (slot,) = adapter.stream_texts(doc).slots
    assert slot.piece == (0, "refusal", 1)
    made = adapter.rest_event(doc, slot.piece, "0")
    assert [s.piece for s in adapter.stream_texts(made).slots] == [(0, "refusal", 1)]
