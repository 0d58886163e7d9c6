"""Events too large to hold (a generated image, speech) are read for the fields their adapter
reads, never held: `codecs.sse_large` under any split and any SSE line form, and every
provider's stream read past the size limit exactly as it is read held whole."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.codecs.sse import SSEDecoder
from extproc.codecs.sse_large import LargeEventReader
from extproc.llm.transforms import SSEObserver, SSEReframer, StreamReport
from extproc.mock import openai_responses
from extproc.mock.common import Reply
from extproc.providers import adapter_for
from extproc.providers.base import Adapter
from extproc.providers.openai_responses import OpenAIResponsesAdapter
from tests.unit.test_jsonprune import PATHS, json_texts, reference
from tests.unit.test_providers_stream import GOLDEN, STREAMS

# --- the reader ---------------------------------------------------------------------------


@st.composite
def sse_events(draw: st.DrawFn) -> bytes:
    """One SSE event as servers write it: LF, CRLF or CR lines, comments, other fields, an
    event name, data on one line or several (with or without the space after the colon)."""
    text = draw(json_texts())
    end = draw(st.sampled_from([b"\n", b"\r\n", b"\r"]))
    space = draw(st.sampled_from([b" ", b""]))
    lines: list[bytes] = []
    if draw(st.booleans()):
        lines.append(b": a comment")
    if draw(st.booleans()):
        lines.append(b"event:" + space + draw(st.sampled_from([b"message", b"x", b""])))
    if draw(st.booleans()):
        lines += [b"id: 7", b"retry: 10"]
    body = text.encode("utf-8", "surrogatepass")
    # JSON has no raw line break inside a string: any line break of it is between tokens
    for line in body.split(b"\n"):
        lines.append(b"data:" + space + line)
    if draw(st.booleans()):
        lines.append(b"event: last")
    return end.join(lines) + end + end


def _whole(raw: bytes) -> tuple[Any, str | None]:
    decoder = SSEDecoder()
    (event,) = decoder.feed(raw) + decoder.finish()   # (a CR at the end may yet be CRLF)
    return reference(event.data, PATHS), event.event


@settings(max_examples=300, deadline=None)
@given(sse_events(), st.lists(st.integers(0, 1 << 16), max_size=8))
def test_any_split_of_an_event_reads_as_the_decoder_reads_it_whole(
        raw: bytes, cuts: list[int]) -> None:
    reader = LargeEventReader(PATHS, 1 << 20)
    at = 0
    for cut in sorted(c % (len(raw) + 1) for c in cuts):
        reader.feed(raw[at:cut])
        at = cut
    reader.feed(raw[at:])
    assert reader.result() == _whole(raw)


def test_an_event_without_data_gives_nothing() -> None:
    reader = LargeEventReader(PATHS, 1024)
    reader.feed(b"event: ping\n: keepalive\n\n")
    assert reader.result() == (None, "ping")


# --- streams past the limit, as held whole -------------------------------------------------


def _inflate(data: str, which: int) -> str:
    """The event's data with one of its strings (the `which`-th, counting round) made 5,000
    characters longer: the event is then past the limit, what it reports unchanged."""
    doc = json.loads(data)
    holders: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node) \
            if isinstance(node, list) else ()
        for key, value in items:
            if isinstance(value, str):
                holders.append((node, key))
            walk(value)

    walk(doc)
    if holders:
        node, key = holders[which % len(holders)]
        node[key] += "A" * 5000
    elif isinstance(doc, dict):
        doc["pad"] = "A" * 5000
    return json.dumps(doc)


def _frames(raw: bytes) -> list[bytes]:
    """The events of a recorded stream, each as its bytes."""
    return [ev.raw for ev in SSEDecoder(1 << 24).feed(raw)]


def _report(adapter: Adapter, frames: list[bytes], limit: int, reframe: bool,
            cumulative: bool) -> tuple[Any, ...]:
    reports: list[StreamReport] = []
    body = b"".join(frames)
    t = SSEReframer(adapter, reports.append, limit) if reframe else \
        SSEObserver(adapter, reports.append, cumulative, limit)
    for i in range(0, len(body), 1500):   # the big event comes in several chunks
        t.feed(body[i:i + 1500])
    t.finish()
    (r,) = reports
    return r.usage, r.finish_reason, r.error, r.unread


STREAM_CASES = [(name, provider) for name, provider, *_ in STREAMS if name.endswith(".sse")]


@pytest.mark.parametrize(("name", "provider"), STREAM_CASES,
                         ids=[name for name, _ in STREAM_CASES])
def test_every_recorded_stream_reads_the_same_with_any_event_past_the_limit(
        name: str, provider: str) -> None:
    adapter = adapter_for(provider)
    frames = _frames((GOLDEN / name).read_bytes())
    cumulative = provider in ("gemini", "vertex")
    modes = [False, True] if provider in ("openai", "azure") else [False]
    for reframe in modes:
        for i, frame in enumerate(frames):
            (event,) = SSEDecoder().feed(frame)
            if not event.has_data or event.data.strip() == "[DONE]":
                continue
            for which in (0, 1, 7):
                big = frame.replace(event.data.encode(),
                                    _inflate(event.data, which).encode())
                assert len(big) > 4096
                stream = [*frames[:i], big, *frames[i + 1:]]
                whole = _report(adapter, stream, 1 << 20, reframe, cumulative)
                past = _report(adapter, stream, 2048, reframe, cumulative)
                assert whole[3] is None
                assert past == whole, (i, which)


def test_the_responses_apis_completed_event_past_the_limit_is_read_for_its_usage() -> None:
    """response.completed repeats the whole reply (a generated image's data too) and the
    request's tools: its usage is read at its place, never a tool schema's "usage"."""
    request = {"model": "gpt-4o-mini", "input": "hi", "stream": True,
               "tools": [{"type": "function", "name": "f", "parameters": {
                   "type": "object", "properties": {"usage": {
                       "type": "object", "properties": {"input_tokens": {"type": "integer"}}}}}},
                   {"type": "image_generation"}]}
    reply = Reply.make("a picture " * 300, "gpt-4o-mini", "resp1", 1795721497.0, 9)
    frames = openai_responses.build_stream(request, reply)
    assert len(frames[-1]) > 4096 and b'"usage"' in frames[-1]
    adapter = OpenAIResponsesAdapter("openai")
    whole = _report(adapter, frames, 1 << 22, False, False)
    past = _report(adapter, frames, 2048, False, False)
    assert past == whole and past[3] is None
    assert past[0].output_tokens == json.loads(
        frames[-1].split(b"data: ", 1)[1])["response"]["usage"]["output_tokens"]
