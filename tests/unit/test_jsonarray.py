"""Tests of the incremental JSON array splitter (Gemini's streamed array) and its SSE rewrite."""

from __future__ import annotations

import itertools
import json
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.codecs.jsonarray import (
    JsonArrayError,
    JsonArraySplitter,
    Part,
    SSEPieces,
    element_to_sse,
)
from extproc.mock import google
from extproc.mock.common import Reply


def split(chunks: list[bytes], max_element_bytes: int = 8 << 20) -> list[bytes]:
    """Feed all chunks, finish, and return the elements."""
    splitter = JsonArraySplitter(max_element_bytes)
    out: list[bytes] = []
    for chunk in chunks:
        out += splitter.feed(chunk)
    assert splitter.closed
    splitter.finish()
    return out


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def sse_compact(obj: Any) -> bytes:
    """The event Gemini sends with alt=sse."""
    return (
        b"data: "
        + json.dumps(obj, ensure_ascii=False, separators=(",", ": ")).encode()
        + (b"\r\n\r\n")
    )


# --- examples ---------------------------------------------------------------------------


@pytest.mark.parametrize("vertex", [False, True])
def test_mock_stream_frame_by_frame(vertex: bool) -> None:
    reply = Reply.make("Hello there, wörld 日本!", "gemini-x", "rid", 1_700_000_000.5, 5)
    frames = google.build_stream({}, reply, sse=False, vertex=vertex)
    splitter = JsonArraySplitter()
    per_frame = [splitter.feed(frame) for frame in frames]
    splitter.finish()
    # Each frame ends with its object's closing brace: yielded at once, not at the next `,`.
    assert [len(got) for got in per_frame] == [1, 1, 1, 1, 0]
    elements = [e for got in per_frame for e in got]
    assert [json.loads(e) for e in elements] == google.stream_events(reply, vertex=vertex)
    assert elements[0].startswith(b'{\n  "candidates": ') and elements[0].endswith(b"\n}")
    # Rewritten, they are byte for byte the mock's own alt=sse stream.
    sse = google.build_stream({}, reply, sse=True, vertex=vertex)
    assert [element_to_sse(e) for e in elements] == sse
    assert split(bytewise(b"".join(frames))) == elements


def test_compact_array() -> None:
    data = b'[{"a":1},{"b":[1,2,{"c":[]}]},[3,[4]],{}]'
    assert split([data]) == [b'{"a":1}', b'{"b":[1,2,{"c":[]}]}', b"[3,[4]]", b"{}"]


def test_crlf_tabs_and_spaces_between_elements() -> None:
    data = b' \r\n\t[ \r\n\t{"a": 1}\t\r\n,\r\n\t{ "b" :\t2 }  \r\n ]\r\n \t'
    assert split([data]) == [b'{"a": 1}', b'{ "b" :\t2 }']
    assert split(bytewise(data)) == [b'{"a": 1}', b'{ "b" :\t2 }']


TRICKY = (
    rb'[{"s": "[]{},:\"\\", "t": "\\", "u": "\\\"}]", "\\\\": {"\\\"[": ["]", "}", "{,"]}}'
    b'\n,\r\n"x\\"y]", ["\\\\", {"k": "\\u005d\\""}]]'
)


def test_strings_with_brackets_quotes_and_backslashes_any_split() -> None:
    first, second, third = split([TRICKY])
    assert [json.loads(first), json.loads(second), json.loads(third)] == json.loads(TRICKY)
    assert first.startswith(b'{"s": ') and first.endswith(b"]}}")
    assert second == b'"x\\"y]"' and third.startswith(b'["') and third.endswith(b'"}]')
    for i in range(len(TRICKY) + 1):
        assert split([TRICKY[:i], TRICKY[i:]]) == [first, second, third], i
    for i in range(0, len(TRICKY), 7):
        for j in range(i, len(TRICKY) + 1, 3):
            assert split([TRICKY[:i], TRICKY[i:j], TRICKY[j:]]) == [first, second, third]


def test_escape_split_across_chunks() -> None:
    # Chunk ends right after a backslash: the escaped quote must not end the string.
    chunks = [b'[{"a": "x\\', b'"}"', b"}", b",", b'"\\', b"\\", b'"]']
    assert split(chunks) == [b'{"a": "x\\"}"}', b'"\\\\"']


def test_unicode_split_inside_multibyte_characters() -> None:
    value = [{"t": "wörld 日本 🎉 \u2028"}, {"ü": ["ß", "€"]}]
    data = json.dumps(value, ensure_ascii=False, indent=2).encode()
    assert [json.loads(e) for e in split(bytewise(data))] == value
    for i in range(len(data) + 1):
        assert [json.loads(e) for e in split([data[:i], data[i:]])] == value


def test_nested_arrays_and_objects() -> None:
    value = [{"a": [[[{"b": [{}, [], [[]]]}]]], "c": {"d": {"e": {"f": [1, [2, [3]]]}}}}, [[[]]]]
    data = json.dumps(value, indent=2).encode()
    assert [json.loads(e) for e in split(bytewise(data))] == value


def test_error_object_inside_the_array_is_an_element() -> None:
    error = {
        "error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}
    }
    data = b'[{"candidates": []}\n,\r\n' + json.dumps(error, indent=2).encode() + b"\n]"
    elements = split([data])
    assert [json.loads(e) for e in elements] == [{"candidates": []}, error]


@pytest.mark.parametrize("data", [b"[]", b" \r\n[ \r\n\t]\r\n", b"[\n]"])
def test_empty_array(data: bytes) -> None:
    assert split([data]) == []
    assert split(bytewise(data)) == []


def test_closed_only_after_the_closing_bracket() -> None:
    splitter = JsonArraySplitter()
    assert splitter.feed(b"") == [] and not splitter.closed
    assert splitter.feed(b'[{"a": 1}') == [b'{"a": 1}'] and not splitter.closed
    assert splitter.feed(b"\n") == [] and not splitter.closed
    assert splitter.feed(b"]") == [] and splitter.closed
    assert splitter.feed(b"\r\n  ") == []
    splitter.finish()


def test_scalar_elements() -> None:
    data = b'[1, "a,]", true ,null,-2.5e3,[],{},"",false]'
    assert split([data]) == [
        b"1",
        b'"a,]"',
        b"true",
        b"null",
        b"-2.5e3",
        b"[]",
        b"{}",
        b'""',
        b"false",
    ]
    assert split(bytewise(data)) == split([data])


def test_scalar_completes_at_the_following_comma_or_bracket() -> None:
    splitter = JsonArraySplitter()
    assert splitter.feed(b"[12") == []
    assert splitter.feed(b"3") == []
    assert splitter.feed(b",") == [b"123"]
    assert splitter.feed(b"true") == []
    assert splitter.feed(b"]") == [b"true"]
    splitter.finish()


def test_element_yielded_at_its_closing_brace() -> None:
    splitter = JsonArraySplitter()
    assert splitter.feed(b'[{"a": {"b": 1}') == []
    assert splitter.feed(b"}") == [b'{"a": {"b": 1}}']
    assert splitter.feed(b'\n,\r\n{"c": 2}') == [b'{"c": 2}']
    assert splitter.feed(b"\n]") == []
    splitter.finish()


@pytest.mark.parametrize(
    "chunks",
    [
        [],
        [b""],
        [b"  \r\n"],
        [b"["],
        [b'[{"a": 1}'],
        [b'[{"a": 1},'],
        [b'[{"a": 1},{"b"'],
        [b'["ab'],
    ],
)
def test_truncated_stream(chunks: list[bytes]) -> None:
    splitter = JsonArraySplitter()
    for chunk in chunks:
        splitter.feed(chunk)
    assert not splitter.closed
    with pytest.raises(JsonArrayError, match="ended before the JSON array was complete"):
        splitter.finish()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'[{"a": 1}]x', "after the closing"),
        (b"[] []", "after the closing"),
        (b'{"a": 1}', "must start with"),
        (b"x[]", "must start with"),
        (b"[,{}]", "expected an element"),
        (b"[{},,{}]", "expected an element"),
        (b"[{},]", "expected an element"),
        (b"[}]", "expected an element"),
        (b'[{"a": 1]}', "unbalanced"),
        (b"[{}}]", "expected ',' or ']'"),
        (b"[[1}]", "unbalanced"),
        (b'[{"a": [1}]}', "unbalanced"),
        (b"[{} {}]", "expected ',' or ']'"),
        (b'[{"c": 2}{', "expected ',' or ']'"),
        (b"[1 2]", "expected ',' or ']'"),
    ],
)
def test_malformed_stream(data: bytes, message: str) -> None:
    for chunks in ([data], bytewise(data)):
        splitter = JsonArraySplitter()
        with pytest.raises(JsonArrayError, match=message):
            for chunk in chunks:
                splitter.feed(chunk)
        # The error is sticky.
        with pytest.raises(JsonArrayError, match=message):
            splitter.feed(b"]")
        with pytest.raises(JsonArrayError, match=message):
            splitter.finish()


def test_garbage_after_close_in_a_later_chunk() -> None:
    splitter = JsonArraySplitter()
    assert splitter.feed(b"[{}]") == [b"{}"]
    assert splitter.feed(b" \r\n") == []
    with pytest.raises(JsonArrayError, match="after the closing"):
        splitter.feed(b"\n,")
    assert issubclass(JsonArrayError, ValueError)


def test_oversize_element() -> None:
    element = b'{"a": "' + b"x" * 9 + b'"}'  # 18 bytes
    assert split([b"[" + element + b"]"], max_element_bytes=18) == [element]
    with pytest.raises(JsonArrayError, match="larger than 17 bytes"):
        split([b"[" + element + b"]"], max_element_bytes=17)
    # An element that never ends fails as soon as the buffer would exceed the bound.
    for head in (b'[{"a": "', b"[[", b'["', b"[1"):
        splitter = JsonArraySplitter(max_element_bytes=17)
        splitter.feed(head)
        splitter.feed(b"2" * (17 - len(head) + 1))  # the element's first 17 bytes
        with pytest.raises(JsonArrayError, match="larger than 17 bytes"):
            splitter.feed(b"2")
    with pytest.raises(JsonArrayError, match="larger than 3 bytes"):
        split([b"[1, 12345, 2]"], max_element_bytes=3)
    # Whitespace between elements does not count toward the bound.
    padded = b"[" + b" " * 100 + b"{}" + b"\r\n" * 100 + b"," + b"\t" * 100 + b"[]" + b" ]"
    assert split(bytewise(padded), max_element_bytes=2) == [b"{}", b"[]"]


# --- element_to_sse ---------------------------------------------------------------------


def test_element_to_sse_examples() -> None:
    assert element_to_sse(b'{"a":1}') == b'data: {"a":1}\r\n\r\n'
    assert element_to_sse(b'{"a": "x y"}') == b'data: {"a": "x y"}\r\n\r\n'
    assert element_to_sse(b"\r\n\t[1,\n\n \t2\r\r]\n") == b"data: [1,2]\r\n\r\n"
    pretty = b'{\n  "a": [\n    1,\n    "x\\ny"\n  ],\r\n\t"b": {}\n}'
    assert element_to_sse(pretty) == b'data: {"a": [1,"x\\ny"],"b": {}}\r\n\r\n'
    obj = {"candidates": [{"content": {"parts": [{"text": "Hi ö"}], "role": "model"}}]}
    assert element_to_sse(json.dumps(obj, ensure_ascii=False, indent=2).encode()) == sse_compact(
        obj
    )


# --- properties -------------------------------------------------------------------------

TEXTS = st.one_of(
    st.text(max_size=12),
    st.lists(
        st.sampled_from(['"', "\\", "[", "]", "{", "}", ",", ":", " ", "\n", "é", "日", "🎉"])
    ).map("".join),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXTS,
)
VALUES = st.recursive(
    SCALARS,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(TEXTS, kids, max_size=4),
    max_leaves=12,
)
OBJECTS = st.dictionaries(TEXTS, VALUES, max_size=5)
ELEMENTS = st.lists(
    st.one_of(OBJECTS, OBJECTS, st.lists(VALUES, max_size=4), SCALARS), min_size=0, max_size=6
)
WHITESPACE = ["", "", "", " ", "\t", "\n", "\r\n", "\n  ", " \r\n\t", "\r\n\r\n    "]


def dump(value: Any, rng: random.Random, ascii_only: bool) -> str:
    """JSON with random whitespace between every token."""

    def ws() -> str:
        return rng.choice(WHITESPACE)

    if isinstance(value, dict):
        items = [
            ws()
            + json.dumps(k, ensure_ascii=ascii_only)
            + ws()
            + ":"
            + ws()
            + dump(v, rng, ascii_only)
            + ws()
            for k, v in value.items()
        ]
        return "{" + (",".join(items) or ws()) + "}"
    if isinstance(value, list):
        items = [ws() + dump(v, rng, ascii_only) + ws() for v in value]
        return "[" + (",".join(items) or ws()) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


def serialise(
    values: list[Any], rng: random.Random, ascii_only: bool
) -> tuple[bytes, list[bytes], list[int], list[int]]:
    """The array, each element's raw bytes, its last byte's offset, and its yield deadline."""
    data = (rng.choice(WHITESPACE) + "[" + rng.choice(WHITESPACE)).encode()
    raws, lasts, deadlines = [], [], []
    for i, value in enumerate(values):
        if i:
            data += (rng.choice(WHITESPACE) + "," + rng.choice(WHITESPACE)).encode()
        raw = dump(value, rng, ascii_only).encode()
        data += raw
        raws.append(raw)
        lasts.append(len(data) - 1)
    data += (rng.choice(WHITESPACE) + "]").encode()
    for raw, last in zip(raws, lasts, strict=True):
        if raw[:1] in (b"{", b"[", b'"'):
            deadlines.append(last)
        else:  # a bare scalar completes at the following `,` or `]`
            rest = data[last + 1 :]
            deadlines.append(last + 1 + len(rest) - len(rest.lstrip(b" \t\r\n")))
    data += rng.choice(WHITESPACE).encode()
    return data, raws, lasts, deadlines


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=300, deadline=None)
@given(ELEMENTS, st.randoms(use_true_random=False), st.booleans(), st.lists(st.integers(0, 10**6)))
def test_any_chunking_yields_the_elements_in_time(
    values: list[Any], rng: random.Random, ascii_only: bool, cuts: list[int]
) -> None:
    data, raws, lasts, deadlines = serialise(values, rng, ascii_only)
    assert json.loads(data) == values  # the generator itself is sound
    for chunks in (chunked(data, cuts), bytewise(data), [data]):
        splitter = JsonArraySplitter()
        got: list[bytes] = []
        offset = 0
        for chunk in chunks:
            got += splitter.feed(chunk)
            offset += len(chunk)
            # Everything completed so far is out, and nothing whose bytes have not all arrived.
            assert len(got) >= sum(d < offset for d in deadlines)
            assert len(got) <= sum(last < offset for last in lasts)
        splitter.finish()
        assert got == raws
        assert [json.loads(e) for e in got] == values


@settings(deadline=None)
@given(ELEMENTS, st.randoms(use_true_random=False), st.lists(st.integers(0, 10**6)), st.data())
def test_truncated_or_trailing_garbage_always_raises(
    values: list[Any], rng: random.Random, cuts: list[int], data_: st.DataObject
) -> None:
    data = serialise(values, rng, False)[0]
    close = data.rindex(b"]")
    cut = data_.draw(st.integers(0, close))
    splitter = JsonArraySplitter()
    for chunk in chunked(data[:cut], cuts):
        splitter.feed(chunk)
    assert not splitter.closed
    with pytest.raises(JsonArrayError, match="ended before"):
        splitter.finish()
    garbage = data_.draw(st.sampled_from([b"x", b",", b"]", b"[]", b"{}", b"0", b'"']))
    splitter = JsonArraySplitter()
    with pytest.raises(JsonArrayError, match="after the closing"):
        for chunk in chunked(data + garbage, cuts):
            splitter.feed(chunk)


@settings(deadline=None)
@given(st.one_of(OBJECTS, st.lists(VALUES)))
def test_element_to_sse_of_pretty_json_is_googles_sse_form(obj: Any) -> None:
    pretty = json.dumps(obj, ensure_ascii=False, indent=2).encode()
    assert element_to_sse(pretty) == sse_compact(obj)
    compact = json.dumps(obj, ensure_ascii=False, separators=(",", ": ")).encode()
    assert element_to_sse(compact) == b"data: " + compact + b"\r\n\r\n"
    array = b"[" + pretty + b"\n,\r\n" + pretty + b"\n]"
    assert [element_to_sse(e) for e in split(bytewise(array))] == [sse_compact(obj)] * 2


# --- elements too large to hold: feed_parts ---------------------------------------------


def parts_of(chunks: list[bytes], limit: int) -> tuple[list[bytes | Part], int]:
    """feed_parts over all chunks: what came out, and the most the splitter ever held."""
    splitter = JsonArraySplitter(limit)
    out: list[bytes | Part] = []
    held = 0
    for chunk in chunks:
        out += splitter.feed_parts(chunk)
        held = max(held, len(splitter._buf))
    splitter.finish()
    return out, held


def rejoined(out: list[bytes | Part]) -> list[bytes]:
    """The elements, each one's parts joined; checks the parts' first/last marks."""
    elements: list[bytes] = []
    open_: list[bytes] | None = None
    for item in out:
        if isinstance(item, bytes):
            assert open_ is None
            elements.append(item)
            continue
        assert item.first == (open_ is None)
        open_ = [item.data] if item.first else [*(open_ or []), item.data]
        if item.last:
            elements.append(b"".join(open_))
            open_ = None
    assert open_ is None
    return elements


@settings(max_examples=300, deadline=None)
@given(ELEMENTS, st.randoms(use_true_random=False), st.booleans(),
       st.lists(st.integers(0, 10**6)), st.integers(2, 40))
def test_an_element_too_large_to_hold_comes_in_parts_under_any_chunking(
    values: list[Any], rng: random.Random, ascii_only: bool, cuts: list[int], limit: int
) -> None:
    """Whatever the chunking and the bound: the parts joined are the elements exactly,
    the splitter never holds much more than the bound and a chunk, an element completed
    within one chunk comes whole, and the parts framed piece by piece are the SSE event
    `element_to_sse` makes of the whole element."""
    data, raws, _, _ = serialise(values, rng, ascii_only)
    for chunks in (chunked(data, cuts), bytewise(data), [data]):
        out, held = parts_of(chunks, limit)
        assert rejoined(out) == raws
        assert held <= limit + max(map(len, chunks)) + 1
        if len(chunks) == 1:
            assert out == raws               # all of it whole within what was fed
        frame = SSEPieces()
        events = b"".join(element_to_sse(i) if isinstance(i, bytes) else frame.feed(i)
                          for i in out)
        assert events == b"".join(map(element_to_sse, raws))


@given(st.text(st.sampled_from(" \t\r\nab\"{}"), max_size=60), st.lists(st.integers(0, 80)))
def test_sse_pieces_strip_line_breaks_and_indentation_across_any_cut(
    text: str, cuts: list[int]
) -> None:
    element = b"{" + text.encode() + b"}"
    pieces = chunked(element, cuts)
    frame = SSEPieces()
    out = b"".join(frame.feed(Part(p, first=i == 0, last=i == len(pieces) - 1))
                   for i, p in enumerate(pieces))
    assert out == element_to_sse(element)


def test_feed_still_refuses_an_element_too_large_and_parts_keep_the_elements_before() -> None:
    data = b'[{"a": 1}, {"b": "' + b"x" * 40 + b'"}, {"c": 2}]'
    with pytest.raises(JsonArrayError, match="larger than 16 bytes"):
        split([data[:30], data[30:]], max_element_bytes=16)
    splitter = JsonArraySplitter(16)
    first = splitter.feed_parts(data[:30])
    assert first[0] == b'{"a": 1}' and isinstance(first[1], Part) and first[1].first
    rest = splitter.feed_parts(data[30:])
    assert isinstance(rest[0], Part) and rest[0].last and rest[1] == b'{"c": 2}'
    # a broken array still fails, with what the chunk completed before the break, and the
    # piece of an element being handed on that came before it (as much goes out for any
    # split: found by review)
    splitter = JsonArraySplitter(16)
    splitter.feed_parts(data[:30])
    with pytest.raises(JsonArrayError, match="unbalanced") as err:
        splitter.feed_parts(b'x"]]')
    (piece,) = err.value.elements
    assert isinstance(piece, Part) and piece.data == b'x"' and not piece.first \
        and not piece.last
