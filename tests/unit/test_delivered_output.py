"""What a stream cut short is charged for: every piece of generated output the provider
streams counts (text, thinking and its signature, refusals, reasoning_content, tool and
function-call arguments, Gemini's `args`, generated media), in the settlement's estimate
(`DeliveredText`) and in the stream cut (`StreamCut`), for every provider and endpoint.
Properties: any chunking of a stream gives the same count, and the count is never lower than
the estimate before every kind of output was counted."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.limits.cut import StreamCut
from extproc.limits.cut_events import format_for
from extproc.limits.estimate import (
    MEDIA_BYTES_PER_TOKEN,
    TEXT_MARKERS,
    DeliveredText,
    OutputScan,
    output_of,
)
from extproc.mock import anthropic as m_anthropic
from extproc.mock import google as m_google
from extproc.mock import openai as m_openai
from extproc.mock import openai_completions as m_completions
from extproc.mock import openai_responses as m_responses
from extproc.mock.common import Reply
from extproc.providers import adapter_for
from extproc.providers.base import Adapter
from extproc.providers.openai_legacy import OpenAICompletionsAdapter
from extproc.providers.openai_responses import OpenAIResponsesAdapter

WORDS = 120
REPLY = Reply.make(" ".join(f"w{i}" for i in range(WORDS)), "m", "rid", 1700000000, 7)
MSG = [{"role": "user", "content": "hi"}]
RESPONSES = OpenAIResponsesAdapter("openai")
COMPLETIONS = OpenAICompletionsAdapter("openai")


def _event(doc: dict[str, Any]) -> bytes:
    return f"event: {doc['type']}\ndata: {json.dumps(doc, separators=(',', ':'))}\n\n".encode()


def _responses_events(kind: str, field: str, n: int = WORDS) -> bytes:
    """A Responses API stream of `n` `kind` delta events, without its end (a cut-short
    stream)."""
    head = [_event({"type": "response.created", "sequence_number": 0, "response": {
        "id": "resp_1", "object": "response", "status": "in_progress", "output": [],
        "usage": None}})]
    return b"".join(head + [_event({"type": kind, "sequence_number": i + 1,
                                    "output_index": 0, "item_id": "x", field: f"w{i} "})
                            for i in range(n)])


def _unified_reasoning() -> bytes:
    """The unified front's translated stream of thinking: delta.reasoning_content."""
    return b"".join(b"data: " + json.dumps({
        "id": "c", "object": "chat.completion.chunk", "created": 1, "model": "claude",
        "choices": [{"index": 0, "delta": {"reasoning_content": f"w{i} "},
                     "finish_reason": None}]}, separators=(",", ":")).encode() + b"\n\n"
        for i in range(WORDS))


def streams() -> dict[str, tuple[Adapter, bytes, bytes]]:
    """name -> (adapter, legacy text marker, the whole stream) for every kind of output."""
    openai, anthropic, gemini = (adapter_for(p) for p in ("openai", "anthropic", "gemini"))
    out: dict[str, tuple[Adapter, bytes, bytes]] = {}
    chat = {"model": "m", "messages": MSG, "stream": True}
    for shape in (None, "refusal", "tool", "tool-escaped"):
        out[f"chat/{shape}"] = (openai, TEXT_MARKERS["openai"],
                                b"".join(m_openai.build_stream(chat, REPLY, shape)))
    out["chat/reasoning_content"] = (openai, TEXT_MARKERS["openai"], _unified_reasoning())
    out["completions"] = (COMPLETIONS, b'"text"', b"".join(m_completions.build_stream(
        {"model": "m", "prompt": "hi", "stream": True}, REPLY)))
    out["responses/text"] = (RESPONSES, b'"response.output_text.delta"', b"".join(
        m_responses.build_stream({"model": "m", "input": "hi", "stream": True}, REPLY)))
    for kind in ("function_call_arguments", "reasoning_summary_text", "refusal"):
        out[f"responses/{kind}"] = (RESPONSES, b'"response.output_text.delta"',
                                    _responses_events(f"response.{kind}.delta", "delta"))
    messages = {"model": "m", "messages": MSG, "max_tokens": 100, "stream": True}
    for shape in (None, "thinking", "tool", "tool-escaped", "start"):
        out[f"anthropic/{shape}"] = (anthropic, TEXT_MARKERS["anthropic"],
                                     b"".join(m_anthropic.build_stream(messages, REPLY, shape)))
    for shape in (None, "thinking", "tool"):
        for sse in (True, False):
            out[f"gemini/{shape}/{'sse' if sse else 'array'}"] = (
                gemini, TEXT_MARKERS["gemini"],
                b"".join(m_google.build_stream({}, REPLY, sse=sse, shape=shape)))
    return out


STREAMS = streams()


def _old_estimate(marker: bytes, chunks: list[bytes]) -> int:
    """The settlement's estimate before every kind of output was counted (for the
    never-lower property): one token per `marker`, and the text values of the first KiB
    scaled to the stream's size."""
    text = re.compile(rb'"(?:content|text|partial_json|arguments)"\s*:\s*"((?:[^"\\]|\\.)*)"')
    fragments = size = sampled = chars = 0
    for chunk in chunks:
        size += len(chunk)
        fragments += chunk.count(marker)
        if sampled < 1024:
            sample = chunk[:1024 - sampled]
            chars += sum(m.end(1) - m.start(1) for m in text.finditer(sample))
            sampled += len(sample)
    return max(fragments, math.ceil(chars * size / sampled / 4)) if sampled else 0


def _chunks(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % len(body) for c in cuts} - {0})
    return [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True)]


def _delivered(adapter: Adapter, marker: bytes, chunks: list[bytes]) -> DeliveredText:
    t = DeliveredText(marker, 4.0, adapter.output_markers, adapter.dense_markers)
    for c in chunks:
        assert t.feed(c) == c                 # an observer: every chunk goes on untouched
    return t


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_every_kind_of_output_counts(name: str) -> None:
    """The mock streams about a token per word, whatever carries it. Where events carry
    several tokens each, the count scales the characters of a sample (a KiB), which may
    miss by a little: at least three quarters of the words, never the nothing it was."""
    adapter, marker, body = STREAMS[name]
    t = _delivered(adapter, marker, [body])
    assert t.tokens >= WORDS * 3 // 4
    assert not t.media


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(sorted(STREAMS)),
       cuts=st.lists(st.integers(min_value=1, max_value=1 << 20), max_size=40))
def test_any_chunking_gives_the_same_count_never_lower_than_before(
        name: str, cuts: list[int]) -> None:
    adapter, marker, body = STREAMS[name]
    whole = _delivered(adapter, marker, [body]).tokens
    chunks = _chunks(body, cuts)
    assert _delivered(adapter, marker, chunks).tokens == whole
    assert whole >= _old_estimate(marker, chunks)


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(sorted(STREAMS)),
       cuts=st.lists(st.integers(min_value=1, max_value=1 << 20), max_size=40),
       leave=st.floats(min_value=0.05, max_value=1.0))
def test_a_stream_left_part_way_counts_what_was_delivered(
        name: str, cuts: list[int], leave: float) -> None:
    """The client leaves anywhere: the count of what it got does not depend on chunking,
    and grows with what was delivered."""
    adapter, marker, body = STREAMS[name]
    part = body[:max(1, int(len(body) * leave))]
    got = _delivered(adapter, marker, [part]).tokens
    assert _delivered(adapter, marker, _chunks(part, cuts)).tokens == got
    assert got <= _delivered(adapter, marker, [body]).tokens


def _image_stream(b64: str) -> bytes:
    return b"".join([
        _event({"type": "response.created", "sequence_number": 0,
                "response": {"id": "r", "status": "in_progress", "output": []}}),
        _event({"type": "response.image_generation_call.partial_image", "sequence_number": 1,
                "output_index": 0, "item_id": "ig", "partial_image_index": 0,
                "partial_image_b64": b64}),
        _event({"type": "response.output_item.done", "sequence_number": 2, "output_index": 0,
                "item": {"id": "ig", "type": "image_generation_call", "result": b64}})])


@settings(max_examples=20, deadline=None)
@given(cuts=st.lists(st.integers(min_value=1, max_value=1 << 20), max_size=30))
def test_generated_media_counts_a_token_per_64_base64_bytes(cuts: list[int]) -> None:
    b64 = "iVBORw0KGgo" * 3000                        # 33 KB, twice (partial and final)
    body = _image_stream(b64)
    t = _delivered(RESPONSES, b'"response.output_text.delta"', _chunks(body, cuts))
    assert t.media
    assert t.tokens >= 2 * len(b64) // MEDIA_BYTES_PER_TOKEN
    gemini = b"".join(m_google.build_stream({}, REPLY, sse=True, shape="image"))
    assert _delivered(adapter_for("gemini"), b'"text"', [gemini]).media


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.tuples(st.sampled_from(["text", "thinking", "data", "id", "args"]),
                                 st.text(max_size=30)), max_size=6),
       cuts=st.lists(st.integers(min_value=1, max_value=4000), max_size=12))
def test_output_scan_reads_the_same_in_any_pieces(values: list[tuple[str, str]],
                                                  cuts: list[int]) -> None:
    raw = ",".join(json.dumps({k: {"a": [v, {"b": v}]} if k == "args" else v})
                   for k, v in values).encode()
    whole = output_of(raw)
    scan = OutputScan()
    for piece in _chunks(raw, cuts) if raw else []:
        scan.feed(piece)
    assert (scan.chars, scan.media) == whole
    media = sum(len(json.dumps(v)) - 2 for k, v in values if k == "data")
    assert whole[1] == media


def test_output_scan_values() -> None:
    assert output_of(b'{"thinking":"abc","signature":"xy","id":"zzzz"}') == (5, 0)
    assert output_of(b'{"refusal":"no","reasoning_content":"hmm"}') == (5, 0)
    assert output_of(b'{"delta":"a\\"b","obfuscation":"qqqq"}') == (4, 0)
    assert output_of(b'{"functionCall": {"name": "f", "args": {"x": "}{"}}}') == (11, 0)
    assert output_of(b'{"inlineData": {"mimeType": "image/png", "data": "AAAA"}}') == (0, 4)
    assert output_of(b'{"content":null,"text": {"format": "x"}}') == (0, 0)


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_the_stream_cut_counts_every_kind_of_output(name: str) -> None:
    """A cut at 40 tokens ends every stream there, whatever carries its output (before,
    thinking, refusals, reasoning_content, tool arguments were never counted)."""
    adapter, marker, body = STREAMS[name]
    array = name.endswith("/array")
    cut = StreamCut(format_for(adapter, "gemini" if "gemini" in name else "openai",
                               array=array), 40, marker, markers=adapter.output_markers)
    out = cut.feed(body) + cut.finish()
    if name == "gemini/tool/sse" or name == "gemini/tool/array" or name == "anthropic/start":
        # the whole reply is one event: delivered, then the stream ends (finished by itself
        # or cut right after it), counted in full
        assert cut.tokens >= WORDS
        return
    assert cut.ended, name
    assert 40 <= cut.tokens < WORDS
    assert len(out) < len(body)


def test_the_stream_cut_sizes_media() -> None:
    b64 = "iVBORw0KGgo" * 3000
    cut = StreamCut(format_for(RESPONSES, "openai"), 100, b'"response.output_text.delta"',
                    markers=RESPONSES.output_markers)
    cut.feed(_image_stream(b64))
    assert cut.media and cut.ended
    assert cut.tokens >= len(b64) // MEDIA_BYTES_PER_TOKEN
