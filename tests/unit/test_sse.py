"""The incremental SSE codec: provider examples, edge cases, and chunking-invariance properties."""

from __future__ import annotations

import json
import re
from itertools import pairwise

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from extproc.codecs.sse import Event, SSEDecoder, SSEError, encode

BOM = b"\xef\xbb\xbf"


def decode(stream: bytes, chunks: list[bytes] | None = None, **kw: int) -> list[Event]:
    """All events from feeding ``chunks`` (default: the whole stream at once), then finish()."""
    decoder = SSEDecoder(**kw)
    events = [e for chunk in (chunks if chunks is not None else [stream])
              for e in decoder.feed(chunk)]
    events += decoder.finish()
    assert decoder.pending == 0
    return events


def bytewise(stream: bytes) -> list[bytes]:
    return [stream[i:i + 1] for i in range(len(stream))]


def ev(raw: bytes, data: str = "", event: str | None = None, id: str | None = None,
       retry: int | None = None, has_data: bool = True, terminated: bool = True) -> Event:
    return Event(raw, data, event, id, retry, has_data, terminated)


# ---- provider examples --------------------------------------------------------------------------

def test_openai_stream() -> None:
    chunks = [{"id": "c1", "choices": [{"delta": {"content": w}}]} for w in ("Hel", "lo", " wörld")]
    stream = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
    stream += b"data: [DONE]\n\n"
    for feeding in (None, bytewise(stream)):
        events = decode(stream, feeding)
        assert [e.data for e in events[:-1]] == [json.dumps(c) for c in chunks]
        assert [json.loads(e.data)["choices"][0]["delta"]["content"] for e in events[:-1]] == [
            "Hel", "lo", " wörld"]
        assert events[-1] == ev(b"data: [DONE]\n\n", "[DONE]")
        assert all(e.event is None and e.has_data and e.terminated for e in events)
        assert b"".join(e.raw for e in events) == stream


def test_anthropic_stream() -> None:
    stream = (b'event: message_start\ndata: {"type":"message_start"}\n\n'
              b'event: ping\ndata: {"type": "ping"}\n\n'
              b'event: content_block_delta\ndata: {"type":"content_block_delta",'
              b'"delta":{"text":"hi"}}\n\n'
              b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    events = decode(stream)
    assert [e.event for e in events] == [
        "message_start", "ping", "content_block_delta", "message_stop"]
    assert json.loads(events[2].data)["delta"]["text"] == "hi"
    assert events[1].raw == b'event: ping\ndata: {"type": "ping"}\n\n'


def test_gemini_crlf_stream() -> None:
    stream = (b'data: {"candidates": [{"content": {"parts": [{"text": "a"}]}}]}\r\n\r\n'
              b'data: {"candidates": [{"content": {"parts": [{"text": "b"}]}}]}\r\n\r\n')
    cut = stream.index(b"\r\n") + 1  # between CR and LF
    for feeding in (None, bytewise(stream), [stream[:cut], stream[cut:]]):
        events = decode(stream, feeding)
        assert [json.loads(e.data)["candidates"][0]["content"]["parts"][0]["text"]
                for e in events] == ["a", "b"]
        assert events[0].raw.endswith(b"}\r\n\r\n")
        assert b"".join(e.raw for e in events) == stream


# ---- fields and line ends -----------------------------------------------------------------------

def test_comments_are_events_without_data() -> None:
    stream = b": keep-alive\n\n:another\n: two\ndata: x\n\n"
    assert decode(stream) == [ev(b": keep-alive\n\n", has_data=False),
                              ev(b":another\n: two\ndata: x\n\n", "x")]


def test_multiline_data_and_space_stripping() -> None:
    stream = b"data: a\ndata:b\ndata:  c\ndata\ndata:\n\n"
    assert decode(stream)[0].data == "a\nb\n c\n\n"


def test_id_retry_event_and_unknown_fields() -> None:
    stream = (b"id: 1\nid: 2\nevent: a\nevent: b\nretry: 3000\nfoo: bar\nData: no\n"
              b"data : no\ndata: yes\n\n"
              b"id: ok\nid: bad\x00\nretry: 12x\nretry: \xd9\xa3\ndata\n\n"
              b"id\nevent\nretry\n\n")
    assert decode(stream) == [
        ev(stream[:81], "yes", "b", "2", 3000),
        ev(stream[81:124], "", None, "ok", None),
        ev(stream[124:], "", "", "", None, has_data=False),
    ]


def test_event_without_data_is_not_dispatchable() -> None:
    (e,) = decode(b"event: ping\n\n")
    assert e.event == "ping" and not e.has_data and e.data == ""


def test_bom_is_ignored_but_kept_in_raw() -> None:
    stream = BOM + b"data: x\n\n" + BOM + b"data: y\n\n"
    for feeding in (None, bytewise(stream), [b"\xef", b"\xbb", b"\xbfdata: x\n\n", stream[12:]]):
        events = decode(stream, feeding)
        assert events[0] == ev(BOM + b"data: x\n\n", "x")
        assert events[1].data == "" and not events[1].has_data  # field "\ufeffdata": unknown
    assert decode(BOM) == [ev(BOM, has_data=False, terminated=False)]
    assert decode(BOM + b"\n") == [ev(BOM + b"\n", has_data=False)]
    assert decode(b"\xef\xbb") == [ev(b"\xef\xbb", has_data=False, terminated=False)]


def test_lone_cr_stream() -> None:
    stream = b"event: a\rdata: 1\r\rdata: 2\r\r"
    for feeding in (None, bytewise(stream)):
        assert decode(stream, feeding) == [ev(b"event: a\rdata: 1\r\r", "1", "a"),
                                           ev(b"data: 2\r\r", "2")]


def test_mixed_line_ends() -> None:
    stream = b"data: a\r\ndata: b\rdata: c\n\r\ndata: d\r\n\rdata: e\n\r"
    expected = [ev(b"data: a\r\ndata: b\rdata: c\n\r\n", "a\nb\nc"),
                ev(b"data: d\r\n\r", "d"), ev(b"data: e\n\r", "e")]
    for feeding in (None, bytewise(stream)):
        assert decode(stream, feeding) == expected


def test_cr_then_lf_across_chunks_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\r") == []  # the CR may be the start of a CRLF
    assert decoder.pending == 9
    assert decoder.feed(b"\ndata: b\n\n") == [ev(b"data: a\n\r\n", "a"), ev(b"data: b\n\n", "b")]
    assert decoder.feed(b"data: c\r\r") == []
    assert decoder.feed(b"x") == [ev(b"data: c\r\r", "c")]
    assert decoder.pending == 1


def test_extra_blank_lines_are_empty_events() -> None:
    stream = b"\ndata: a\n\n\r\n\rdata: b\n\n"
    events = decode(stream)
    assert [e.raw for e in events] == [b"\n", b"data: a\n\n", b"\r\n", b"\r", b"data: b\n\n"]
    assert [e.data for e in events if e.has_data] == ["a", "b"]


def test_utf8_split_across_chunks() -> None:
    stream = "data: ünïcödé 😀 中文\n\n".encode()
    assert decode(stream, bytewise(stream))[0].data == "ünïcödé 😀 中文"
    assert decode(b"data: \xff\xfe\n\n")[0].data == "\ufffd\ufffd"


def test_empty_stream_and_empty_chunks() -> None:
    assert decode(b"") == []
    decoder = SSEDecoder()
    assert decoder.feed(b"") == [] and decoder.finish() == [] and decoder.pending == 0


def test_unterminated_tail_on_finish() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\nevent: e\ndata: b\n") == [ev(b"data: a\n\n", "a")]
    assert decoder.pending == 17
    assert decoder.finish() == [ev(b"event: e\ndata: b\n", "b", "e", terminated=False)]
    assert decoder.finish() == []
    assert decode(b"data: x\r") == [ev(b"data: x\r", "x", terminated=False)]
    assert decode(b"data: x\r\n") == [ev(b"data: x\r\n", "x", terminated=False)]
    assert decode(b"data: x\n\r") == [ev(b"data: x\n\r", "x")]  # a trailing CR ends at EOF
    assert decode(b": only a comment") == [ev(b": only a comment", has_data=False,
                                             terminated=False)]


def test_oversize_event_raises() -> None:
    decoder = SSEDecoder(max_event_bytes=64)
    assert len(decoder.feed(b"data: " + b"x" * 50 + b"\n\n")) == 1
    decoder.feed(b"data: " + b"y" * 50)
    with pytest.raises(SSEError, match="max_event_bytes=64"):
        decoder.feed(b"y" * 20)
    with pytest.raises(SSEError, match="max_event_bytes=64"):  # complete, but in one chunk
        SSEDecoder(max_event_bytes=64).feed(b"data: " + b"z" * 100 + b"\n\ndata: ok\n\n")
    assert decode(b"data: " + b"z" * 56 + b"\n\n", max_event_bytes=64)[0].data == "z" * 56


def test_long_line_in_small_chunks_is_not_rescanned_quadratically() -> None:
    body = b"data: " + b"x" * 200_000 + b"\r\n\r\n"
    events = decode(body, [body[i:i + 7] for i in range(0, len(body), 7)])
    assert events == [ev(body, "x" * 200_000)]


# ---- encode -------------------------------------------------------------------------------------

def test_encode() -> None:
    assert encode("x") == b"data: x\n\n"
    assert encode("x", terminator=b"\r\n\r\n") == b"data: x\r\n\r\n"
    assert encode("a\nb\r\nc", event="e", id="7", retry=10) == (
        b"event: e\nid: 7\nretry: 10\ndata: a\ndata: b\ndata: c\n\n")
    assert encode("") == b"data: \n\n"
    assert encode("a\nb", terminator=b"\r\r") == b"data: a\ndata: b\r\r"
    for bad in ({"event": "a\nb"}, {"id": "a\rb"}, {"id": "a\0"}, {"retry": -1},
                {"terminator": b"\n"}, {"terminator": b"\n\nx"}):
        with pytest.raises(ValueError):
            encode("x", **bad)  # type: ignore[arg-type]


# ---- properties ---------------------------------------------------------------------------------

LINE_ENDS = ("\n", "\r\n", "\r")
text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
               max_size=12)
value_text = st.one_of(text, st.from_regex(r"\A[0-9]{1,6}\Z"), st.sampled_from(["", " ", "\0"]))
field = st.tuples(st.sampled_from(["data", "data", "event", "id", "retry", "foo", "Data", ":"]),
                  st.sampled_from([": ", ":", ""]), value_text)
event_fields = st.lists(field, max_size=5)


def _model(fields: list[tuple[str, str, str]]) -> tuple[str, dict[str, object]]:
    """Serialized lines (no line ends) and the expected field values, built from the generator's
    structure rather than by parsing."""
    lines, data = [], []
    out: dict[str, object] = {"event": None, "id": None, "retry": None}
    for name, sep, value in fields:
        if name == ":":
            lines.append(":" + value)  # a comment
            continue
        if sep == "":
            lines.append(name)
            value = ""
        else:
            lines.append(name + sep + value)
            if sep == ":" and value.startswith(" "):
                value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            out["event"] = value
        elif name == "id" and "\0" not in value:
            out["id"] = value
        elif name == "retry" and value.isascii() and value.isdigit():
            out["retry"] = int(value)
    return lines, {"data": "\n".join(data), "has_data": bool(data), **out}


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, list[Event]]:
    """A valid stream and the events it holds: random fields and non-ASCII values, an optional
    BOM, one line-end style per stream or a random one per line, optional unterminated tail."""
    style = draw(st.sampled_from([*LINE_ENDS, "mixed"]))
    prev = ""

    def line_end() -> str:
        nonlocal prev
        le = draw(st.sampled_from(LINE_ENDS)) if style == "mixed" else style
        if prev == "\r" and le == "\n":
            le = "\r"  # "\r" + "\n" would be one CRLF, not two line ends
        prev = le
        return le

    def ended(lines: list[str]) -> str:
        nonlocal prev
        out = []
        for line in lines:
            prev = ""  # a non-empty line separates two line ends
            out.append(line + line_end())
        return "".join(out)

    bom = draw(st.booleans())
    events: list[Event] = []
    for fields in draw(st.lists(event_fields, max_size=6)):
        lines, expect = _model(fields)
        raw = ended(lines) + line_end()
        events.append(Event(raw.encode(), **expect))  # type: ignore[arg-type]
    tail_lines, expect = _model(draw(event_fields))
    if tail_lines:
        tail = ended(tail_lines)
        if draw(st.booleans()):
            tail = tail[:-len(prev)]  # no final line end
        events.append(Event(tail.encode(), **expect, terminated=False))  # type: ignore[arg-type]
    if bom:
        if events:
            first = events[0]
            events[0] = Event(BOM + first.raw, first.data, first.event, first.id, first.retry,
                              first.has_data, first.terminated)
        else:
            events.append(Event(BOM, "", None, None, None, False, False))
    return b"".join(e.raw for e in events), events


@st.composite
def chunked(draw: st.DrawFn) -> tuple[bytes, list[Event], list[bytes]]:
    stream, events = draw(streams())
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    bounds = [0, *cuts, len(stream)]
    return stream, events, [stream[a:b] for a, b in pairwise(bounds)]


@settings(max_examples=400, deadline=None)
@given(chunked())
def test_any_chunking_decodes_the_generated_events(case: tuple[bytes, list[Event], list[bytes]]
                                                   ) -> None:
    stream, expected, chunks = case
    whole = decode(stream)
    assert whole == expected
    assert decode(stream, chunks) == whole
    assert b"".join(e.raw for e in whole) == stream


@settings(max_examples=150, deadline=None)
@given(streams())
def test_one_byte_chunks_decode_like_the_whole(case: tuple[bytes, list[Event]]) -> None:
    stream, expected = case
    assert decode(stream, bytewise(stream)) == expected


@settings(max_examples=400, deadline=None)
@given(chunked(), st.booleans())
def test_whole_lf_cuts_a_chunk_as_feed_does_or_leaves_it(
        case: tuple[bytes, list[Event], list[bytes]], small: bool) -> None:
    """`whole_lf`, the maskers' cut of a chunk of whole events, returns exactly the bytes of
    the events `feed` returns for it, or None and leaves the decoder as it was."""
    _, _, chunks = case
    limit = 40 if small else 1 << 20
    fast, plain = SSEDecoder(limit), SSEDecoder(limit)
    for chunk in chunks:
        raws = fast.whole_lf(chunk)
        try:
            expected = plain.feed(chunk)
        except SSEError:
            assert raws is None
            return
        if raws is None:
            assert fast.feed(chunk) == expected
        else:
            assert raws == [e.raw for e in expected]
            assert all(e.terminated for e in expected) and plain.pending == 0
    assert fast.finish() == plain.finish()


def test_whole_lf_takes_only_whole_lf_events() -> None:
    d = SSEDecoder()
    assert d.whole_lf(b"data: a\n\ndata: b\n\n") == [b"data: a\n\n", b"data: b\n\n"]
    assert d.whole_lf(b"data: a\n\ndata: b") is None          # a partial event
    assert d.whole_lf(b"data: a\r\n\r\n") is None            # CR
    assert d.whole_lf(b"data: a\n\n\ndata: b\n\n") is None  # an empty event
    assert SSEDecoder().whole_lf(BOM + b"data: a\n\n") is None  # the stream's BOM
    held = SSEDecoder()
    held.feed(b"data: a")
    assert held.whole_lf(b"\n\n") is None                      # completes a held event


def reference_raws(stream: bytes) -> list[bytes]:
    """Each event's bytes, by tokenizing the whole stream's line ends left to right (the slow,
    obvious way): a line end that starts where the previous line started is a blank line."""
    raws, start, line_start = [], 0, 3 if stream.startswith(BOM) else 0
    for m in re.finditer(rb"\r\n|\r|\n", stream):
        if m.start() == line_start:
            raws.append(stream[start:m.end()])
            start = m.end()
        line_start = m.end()
    return [*raws, stream[start:]] if start < len(stream) else raws


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b"a", b":", b" ", b"\xc3\xa9", b"\xc3",
                                 BOM, b"data", b"id: 1", b"event: e", b"retry: 5"]), max_size=40),
       st.lists(st.integers(0, 200), max_size=10))
def test_arbitrary_bytes_match_reference_split(parts: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(parts)
    bounds = [0, *sorted(min(c, len(stream)) for c in cuts), len(stream)]
    whole = decode(stream)
    assert [e.raw for e in whole] == reference_raws(stream)
    assert decode(stream, [stream[a:b] for a, b in pairwise(bounds)]) == whole
    assert decode(stream, bytewise(stream)) == whole
    assert all(e.terminated for e in whole[:-1])


full_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
name_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\0"),
                    max_size=10)


@settings(max_examples=300, deadline=None)
@given(full_text, st.none() | name_text, st.none() | name_text, st.none() | st.integers(0, 10**9),
       st.sampled_from([b"\n\n", b"\r\n\r\n", b"\r\r", b"\n\r\n"]))
def test_encode_decode_round_trip(data: str, event: str | None, id: str | None,
                                  retry: int | None, terminator: bytes) -> None:
    raw = encode(data, event=event, id=id, retry=retry, terminator=terminator)
    decoded = decode(raw, bytewise(raw))
    assert decoded == [Event(raw, re.sub(r"\r\n|\r|\n", "\n", data), event, id, retry, True)]


def plain_decoder(limit: int) -> SSEDecoder:
    return SSEDecoder(limit, fast=False)


def _outcome(decoder: SSEDecoder, chunks: list[bytes]) -> list[object]:
    """Each feed's events (or the error it raised, after which the decoder is done)."""
    out: list[object] = []
    for chunk in chunks:
        try:
            out.append(decoder.feed(chunk))
        except SSEError as exc:
            return [*out, str(exc)]
    return [*out, decoder.finish()]


_LF_PARTS = st.sampled_from([b"\n", b"\n\n", b"data: x", b"data: " + b"y" * 20, b":",
                             b"event: e", b"\xc3\xa9", b"\r\n", BOM, BOM[:2]])


@settings(max_examples=500, deadline=None)
@given(st.lists(st.lists(_LF_PARTS, max_size=8).map(b"".join), max_size=8),
       st.one_of(st.integers(4, 48), st.just(1 << 20)))
@example([b"\n", b"data: x\n\n"], 8).via("an event one byte over the limit")
@example([b"\n", b"data: x\n\n"], 9).via("an event at the limit")
def test_lf_fast_path_equals_the_plain_way(chunks: list[bytes], limit: int) -> None:
    """A chunk without CR that starts an event is cut with one find per event; what it gives
    (events, errors past max_event_bytes) is what the plain way gives, chunk by chunk."""
    assert _outcome(SSEDecoder(limit), chunks) == _outcome(plain_decoder(limit), chunks)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"\n\n", b"\r\n\r\n", b"\r\r"]), min_size=4, max_size=4),
       st.integers(0, 3), st.lists(st.integers(1, 3000), max_size=8), st.booleans())
def test_the_events_before_one_too_large_come_with_the_error(
        ends: list[bytes], big_at: int, cuts: list[int], fast: bool) -> None:
    """Whatever the chunking, the events completed before an event past max_event_bytes
    reach the caller, returned or carried by the SSEError (which lost them before): a
    caller that ends the stream at the error sends everything before it."""
    events = [b"data: " + (b"x" * 3000 if i == big_at else f"e{i}".encode()) + end
              for i, end in enumerate(ends)]
    body = b"".join(events)
    decoder = SSEDecoder(1024, fast=fast)
    got: list[bytes] = []
    pos = 0
    with pytest.raises(SSEError) as raised:
        for size in [*cuts, len(body)]:
            got += [ev.raw for ev in decoder.feed(body[pos:pos + size])]
            pos += size
        got += [ev.raw for ev in decoder.finish()]
    got += [ev.raw for ev in raised.value.events]
    assert b"".join(got) == b"".join(events[:big_at])
