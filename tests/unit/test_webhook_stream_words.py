"""Where a webhook stream guard ends a segment (`webhook_held.WordEnds`): kept up to date as
events are held, it gives what reading all the held events again gave (`word_start_ref`, the
former `word_start`, kept here as the reference), so the guard makes the same calls and sends
the same bytes for any split of any text, while each event costs a bounded amount of work
(found by review: text without spaces in one-character events, base64 or a long URL, made
each event read all those held, 3 million held events read for 20,000 characters)."""

from __future__ import annotations

import base64
import itertools
import json
import random
from collections.abc import Hashable
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from extproc.codecs.sse import SSEDecoder
from extproc.guards.scanner import Scanner, builtin
from extproc.guards.webhook import Mask, Text, Verdict
from extproc.guards.webhook_held import Held, WordEnds, is_json, read_event
from extproc.guards.webhook_stream import WebhookStreamGuard
from extproc.providers import adapter_for
from tests.unit.test_guard_webhook import feed_split

EMAIL = Scanner(builtin(["email"]))


def word_start_ref(held: list[Held], least: int) -> int | None:
    """The former `webhook_held.word_start`, verbatim: all the held events read again."""
    keys = {key for h in held for key, _, _ in h.slots}
    if len(keys) != 1 or any(is_json(k) or not isinstance(k, tuple) for k in keys):
        return None
    cut: int | None = None
    before, chars = "", 0
    for index, h in enumerate(held):
        texts = [holder[slot] for _, holder, slot in h.slots if holder[slot]]
        if not texts:
            continue
        if before and chars >= max(least, 1) \
                and (before[-1].isspace() or texts[0][0].isspace()):
            cut = index
        before = texts[-1]
        chars += sum(len(t) for t in texts)
    return None if cut is None else len(held) - cut


# --- random texts, split at random into events ----------------------------------------------
_TOKENS = st.one_of(
    st.sampled_from(["the", "word", "jane@example.org", "héllo", "日本語", "😀", "a.b", "x"]),
    st.sampled_from([" the", " word", " jane@example.org", "\nhéllo", " 😀", "\u3000x"]),
    st.sampled_from([" ", "  ", "\n", "\t", "\u00a0", "\u3000", " \n "]),
    st.text("ABCDEFabcdef0123456789+/=é😀", min_size=10, max_size=300),   # no space in it
    st.text(max_size=6),                                                  # any characters
)
#: what each event carries: choice 0's content mostly, another choice's, a refusal, tool-call
#: arguments (JSON source), nothing (an empty delta), no text field at all
_KINDS = st.sampled_from(["content"] * 10 + ["other", "refusal", "args", "empty", "none"])
#: the kinds the events cycle through: choice 0's content only, one kind, a mix
_KIND_LISTS = st.one_of(st.just([]), _KINDS.map(lambda k: [k]),
                        st.lists(_KINDS, min_size=2, max_size=6))


def _pieces(tokens: list[str], cuts: list[int], by_token: bool) -> list[str]:
    """The events' texts: the tokens as they are (a model's tokens), or their text split at
    random."""
    return tokens if by_token else _split("".join(tokens), cuts)


def _split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts})
    return [text[a:b] for a, b in itertools.pairwise([0, *points, len(text)])]


def _chunk(kind: str, piece: str, finish: str | None = None) -> bytes:
    delta: dict[str, Any] = {
        "content": {"content": piece}, "other": {"content": piece},
        "refusal": {"refusal": piece}, "empty": {"content": ""}, "none": {},
        "args": {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}}[kind]
    doc = {"id": "c", "object": "chat.completion.chunk", "choices": [
        {"index": 1 if kind == "other" else 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(doc).encode() + b"\n\n"


def _stream(pieces: list[str], kinds: list[str]) -> bytes:
    """An OpenAI chat stream of `pieces`, each carried as the next of `kinds` (cycling; all
    choice 0's content when there are none), then the finish and [DONE]."""
    body = b"".join(_chunk(kinds[i % len(kinds)] if kinds else "content", p)
                    for i, p in enumerate(pieces))
    return body + _chunk("none", "", "stop") + b"data: [DONE]\n\n"


@settings(max_examples=300, deadline=None)
@given(tokens=st.lists(_TOKENS, max_size=30), by_token=st.booleans(),
       cuts=st.lists(st.integers(0, 1 << 12), max_size=40), kinds=_KIND_LISTS)
@example(tokens=["a", " b", " c"], by_token=True, cuts=[], kinds=["args"])
def test_word_ends_kept_up_to_date_answer_as_reading_all_again(
        tokens: list[str], by_token: bool, cuts: list[int], kinds: list[str]) -> None:
    adapter, whole = adapter_for("openai"), itertools.count()
    events = SSEDecoder(1 << 20).feed(_stream(_pieces(tokens, cuts, by_token), kinds))
    held: list[Held] = []
    words = WordEnds()
    for ev in events[:-2]:                  # (not the finish, nor [DONE])
        h, _, _ = read_event(adapter, ev, whole, frozenset())
        held.append(h)
        words.add(h)
        for least in (0, 1, 2, 7, 64, 256):
            want = word_start_ref(held, least)
            assert words.start(least) == want
            assert WordEnds(held).start(least) == want      # (as rebuilt for kept events)


# --- the guard: the same calls, the same bytes ------------------------------------------------
class _ReadAllAgain:
    """Where the guard's segment ends, found the former way: all the held events read."""

    def __init__(self, held: list[Held]) -> None:
        self.held = held

    def add(self, held: Held) -> None:
        pass

    def start(self, least: int) -> int | None:
        return word_start_ref(self.held, least)


class FormerGuard(WebhookStreamGuard):
    """The guard as it was: each segment end reads all the held events again."""

    def _segment_end(self, last: Held) -> int | None:
        self.words = _ReadAllAgain(self.held)   # type: ignore[assignment]
        return super()._segment_end(last)


class CheckedGuard(WebhookStreamGuard):
    """The guard, checking at each event that its word ends answer as reading all again."""

    def _segment_end(self, last: Held) -> int | None:
        for least in (0, 1, self.segment):
            assert self.words.start(least) == word_start_ref(self.held, least)
        return super()._segment_end(last)


def _run(cls: type[WebhookStreamGuard], provider: str, raw: bytes, cuts: list[int],
         segment: int) -> tuple[list[list[tuple[str, str]]], list[str], list[bytes]]:
    calls: list[list[tuple[str, str]]] = []
    reports: list[str] = []

    async def hook(texts: list[Text]) -> Verdict:
        calls.append([(t.text, t.context) for t in texts])
        if any("falcon" in t.text for t in texts):
            return Verdict("reject", reason="a codename")
        masks = tuple(Mask(i, s.start, s.end, "<EMAIL>")
                      for i, t in enumerate(texts) for s in EMAIL.find(t.text))
        return Verdict("mask", masks) if masks else Verdict("pass")

    guard = cls(provider, "dlp", hook, segment, False, 1 << 20,
                lambda g, o: reports.append(o))
    return calls, reports, feed_split(guard, raw, cuts)


def _anthropic_stream(pieces: list[str], kinds: list[str]) -> bytes:
    def event(doc: dict[str, Any]) -> bytes:
        return f"event: {doc['type']}\ndata: {json.dumps(doc)}\n\n".encode()

    def delta(i: int, piece: str) -> dict[str, Any]:
        kind = kinds[i % len(kinds)] if kinds else "content"
        block = 1 if kind == "other" else 0
        d = {"type": "thinking_delta", "thinking": piece} if block else \
            {"type": "text_delta", "text": piece}
        return {"type": "content_block_delta", "index": block, "delta": d}

    return b"".join(event(d) for d in [
        {"type": "message_start", "message": {"id": "m", "type": "message", "role": "assistant",
                                              "content": [], "usage": {"input_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text",
                                                                      "text": ""}},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "thinking",
                                                                      "thinking": ""}},
        *(delta(i, p) for i, p in enumerate(pieces)),
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_stop", "index": 1},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
         "usage": {"output_tokens": 9}},
        {"type": "message_stop"}])


@settings(max_examples=300, deadline=None)
@given(provider=st.sampled_from(["openai", "anthropic"]),
       tokens=st.lists(_TOKENS, max_size=40), by_token=st.booleans(),
       splits=st.lists(st.integers(0, 1 << 12), max_size=80),
       cuts=st.lists(st.integers(0, 1 << 16), max_size=20), kinds=_KIND_LISTS,
       segment=st.sampled_from([1, 3, 8, 16, 64, 256]))
@example(provider="openai", tokens=[" hello", " there", " general", " kenobi", " you"] * 3,
         by_token=True, splits=[], cuts=[], kinds=[], segment=8)   # (kept events carry over)
@example(provider="openai", tokens=["a", " b", " c"] * 9, by_token=True, splits=[],
         cuts=[], kinds=["args"], segment=1)   # (arguments past the hold: none cut at words)
def test_the_guard_calls_and_sends_as_before_for_any_split(
        provider: str, tokens: list[str], by_token: bool, splits: list[int], cuts: list[int],
        kinds: list[str], segment: int) -> None:
    """(`cuts`: where the stream's bytes reach the guard.)"""
    pieces = _pieces(tokens, splits, by_token)
    raw = _stream(pieces, kinds) if provider == "openai" else _anthropic_stream(pieces, kinds)
    calls, reports, out = _run(CheckedGuard, provider, raw, cuts, segment)
    assert (calls, reports, out) == _run(FormerGuard, provider, raw, cuts, segment)


@pytest.mark.parametrize(("seed", "step"), [(0, 1), (1, 2)])
def test_long_runs_without_spaces_in_one_character_events_go_as_before(
        seed: int, step: int) -> None:
    """Base64 with a few spaces, in one- or two-character events: segments cut past twice
    the segment, past `MAX_HELD_EVENTS` events and at word ends, kept events carried over:
    the same calls, the same bytes."""
    rng = random.Random(seed)
    text = " ".join(base64.b64encode(rng.randbytes(rng.randint(1, 500))).decode()
                    for _ in range(8))
    raw = _stream(_split(text, list(range(0, len(text), step))), [])
    for segment in (16, 256):
        assert _run(WebhookStreamGuard, "openai", raw, [], segment) == \
            _run(FormerGuard, "openai", raw, [], segment)


# --- the work per event ------------------------------------------------------------------
def test_each_held_event_is_read_a_bounded_number_of_times(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """20,000 characters of base64 in one-character events, segments of 256: the held events
    are read (`WordEnds.add`, when held and when kept for the next segment) about once each,
    where reading all the held ones again at each event read some 3 million."""
    looked: dict[Hashable, int] = {"events": 0}
    add = WordEnds.add

    def counted(self: WordEnds, held: Held) -> None:
        looked["events"] += 1
        add(self, held)

    monkeypatch.setattr(WordEnds, "add", counted)
    text = base64.b64encode(random.Random(1).randbytes(15000)).decode()[:20000]
    raw = _stream(list(text), [])
    calls, reports, out = _run(WebhookStreamGuard, "openai", raw, [], 256)
    assert b"".join(out) == raw                 # (all passes, byte for byte)
    assert "".join(t for call in calls for t, _ in call) == text
    assert len(calls) == 40 and set(reports) == {"pass"}
    assert len(text) <= looked["events"] <= 2 * len(text) + 10
