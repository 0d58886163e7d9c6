"""A chat stream delta's fields this code does not model are read as the openai SDK joins
them (found by review): its stream helper (`ChatCompletionStreamState`, behind
`client.chat.completions.stream`) appends each string to the one at the same path and merges
a list of objects entry by entry by `index`, so a value split over two events reached the
user joined while the guards read each event's strings apart. Each test streams a reply
through the real `Processor` (sans-IO) with the email mask guard on, and reads it back with
the SDK's own SSE decoder and accumulator (openai 3.63, as in the venv)."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai._models import construct_type
from openai._streaming import SSEDecoder
from openai.lib.streaming.chat._completions import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from tests.unit import test_reply_as_sdks_read as sdks_read
from tests.unit.test_reply_as_sdks_read import EMAIL, exchange_typed

CHAT = json.dumps({"model": "gpt-4o-mini", "stream": True,
                   "messages": [{"role": "user", "content": "hi"}]})


def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
    doc = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(doc, separators=(",", ":")).encode() + b"\n\n"


def replied(deltas: list[dict[str, Any]], guards: dict[str, Any] | None = None
            ) -> tuple[int | None, bytes]:
    """The status (None: the upstream's) and what the client gets of a stream of these
    deltas, then a stop and [DONE]; with `guards`, under a config whose openai route has
    these guards (else the email mask and the secrets reject guard)."""
    chunks = [event(d) for d in deltas] + [event({}, "stop"), b"data: [DONE]\n\n"]
    with pytest.MonkeyPatch.context() as patch:
        if guards is not None:
            patch.setattr(sdks_read, "CONFIG", {"guards": guards, "routes": [
                {"name": "openai", "provider": "openai", "guards": list(guards)}]})
        status, body, _ = exchange_typed("openai", "/v1/chat/completions", CHAT, 200,
                                         "text/event-stream", chunks, stream=True)
    return status, body


def stream(deltas: list[dict[str, Any]], guards: dict[str, Any] | None = None) -> bytes:
    """`replied`'s body, of a stream that went on (no refusal of its status)."""
    status, body = replied(deltas, guards)
    assert status is None, body
    return body


def accumulated(body: bytes) -> dict[str, Any]:
    """The message the openai SDK's stream helper builds from the client's bytes."""
    state = ChatCompletionStreamState()
    for sse in SSEDecoder().iter_bytes(iter([body])):
        if sse.data.startswith("[DONE]"):
            break
        state.handle_chunk(construct_type(type_=ChatCompletionChunk, value=sse.json()))
    return state.current_completion_snapshot.choices[0].message.to_dict()


def details(*texts: str) -> list[dict[str, Any]]:
    return [{"reasoning_details": [{"type": "reasoning.text", "text": t, "index": 0}]}
            for t in texts]


def test_a_value_split_in_a_list_entry_is_masked_where_the_sdk_joins_it() -> None:
    body = stream([{"role": "assistant"}, *details("mail john.doe@exa", "mple.com now"),
                   {"content": "ok"}])
    message = accumulated(body)
    assert EMAIL.encode() not in body
    assert message["reasoning_details"] == [
        {"type": "reasoning.text", "text": "mail <EMAIL> now", "index": 0}]
    assert message["content"] == "ok"


def test_a_value_split_in_a_string_field_is_masked_where_the_sdk_joins_it() -> None:
    body = stream([{"role": "assistant", "thinking": "mail john.doe@exa"},
                   {"thinking": "mple.com now"}])
    assert accumulated(body)["thinking"] == "mail <EMAIL> now"


def test_what_is_held_at_the_end_comes_back_at_its_path() -> None:
    """The last event of a field ends where an address might go on: the guard holds it and
    sends it back, at the same path, once the choice ends (`openai_other.rest_delta`)."""
    body = stream([{"role": "assistant", "x_trace": {"steps": [
        {"index": 0, "note": "write to bob"}]}}])
    message = accumulated(body)
    assert message["x_trace"] == {"steps": [{"index": 0, "note": "write to bob"}]}


def test_entries_of_other_indexes_stay_apart() -> None:
    body = stream([{"reasoning_details": [{"text": "john.doe@", "index": 0},
                                          {"text": "a@b", "index": 1}]},
                   {"reasoning_details": [{"text": "example.com", "index": 0}]}])
    got = accumulated(body)["reasoning_details"]
    assert [e["text"] for e in got] == ["<EMAIL>", "a@b"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=6, unique=True))
def test_any_split_reads_as_the_whole(cuts: list[int]) -> None:
    """However the value is split over events, the SDK's joined value is the whole one
    masked."""
    whole = "to john.doe@example.com and jane@example.org, thanks"
    bounds = [0, *sorted(c for c in cuts if c < len(whole)), len(whole)]
    pieces = [whole[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    body = stream([{"role": "assistant"}, *details(*pieces)])
    text = accumulated(body)["reasoning_details"][0]["text"]
    assert text == re.sub(r"[\w.]+@[\w.]+\.\w+", "<EMAIL>", whole)


def call(arguments: Any) -> dict[str, Any]:
    return {"tool_calls": [{"index": 0, "id": "t", "type": "function",
                            "function": {"name": "send", "arguments": arguments}}]}


def test_arguments_sent_as_objects_are_masked_where_the_sdk_merges_them() -> None:
    """Not what OpenAI sends, but what the SDK merges key by key across events."""
    body = stream([{"role": "assistant"}, call({"to": "john.doe@exa"}), call({"to": "mple.com"})])
    (merged,) = accumulated(body)["tool_calls"]
    assert merged["function"]["arguments"] == {"to": "<EMAIL>"}


def test_a_number_in_an_unknown_field_is_read() -> None:
    """A card number as a JSON number (the SDK keeps it whole: it adds numbers, never
    joins their digits): read as its JSON text, masked to a string."""
    guards = {"pii": {"detectors": ["card"], "action": "mask"}}
    body = stream([{"role": "assistant", "x_ref": {"card": 4111111111111111}}], guards)
    assert b"4111111111111111" not in body
    assert accumulated(body)["x_ref"] == {"card": "<CARD>"}


def test_keys_and_index_keys_are_read_whole() -> None:
    """Found by the review of the first fix: an `index` key's string value and the keys of
    an object were skipped (the SDK replaces an `index` value and never joins keys: each is
    read whole, on its own)."""
    body = stream([{"role": "assistant", "x_meta": {"index": f"mail {EMAIL}"}},
                   {"x_more": {EMAIL: "hi"}},
                   call({"index": EMAIL}), call({EMAIL: "x"})])
    assert EMAIL.encode() not in body


@pytest.mark.parametrize("index", [-1, True, "0"])
def test_an_entry_index_the_sdk_reads_as_another_position_is_unreadable(index: Any) -> None:
    """The SDK indexes its list with an entry's `index`: -1 is the last entry, true the
    second; such an entry's text would join another's the guards keep apart."""
    _status, body = replied([
        {"reasoning_details": [{"text": "mail john.doe@exa", "index": index}]},
        {"reasoning_details": [{"text": "mple.com", "index": index}]}])
    assert EMAIL.encode() not in body and b"mple.com" not in body
    assert b'"error"' in body


def test_many_paths_in_one_stream_are_bounded() -> None:
    """Each path is a piece: an upstream naming a new one in every event is refused past
    the guards' bound on open pieces (`MAX_OPEN_PIECES`), as new indexes are."""
    _status, body = replied([{f"x_{i}": "some text"} for i in range(1100)])
    assert b"too many" in body or b"more than" in body


def test_a_key_a_guard_would_mask_makes_the_event_unreadable() -> None:
    """A client merges by key: a renamed key would split what it joins, and the rest event
    at the piece's end repeated the key as it came (found by the review of the second
    fix: `{"falcon": "write to "}` then `{"falcon": "bob"}` with `falcon` a deny word)."""
    guards = {"words": {"deny": {"words": ["falcon"]}, "action": "mask"},
              "pii": {"detectors": ["email"], "action": "mask"}}
    for deltas in ([{"role": "assistant", EMAIL: "mail john.doe@exa"}, {EMAIL: "mple.com"}],
                   [{"role": "assistant", "x_meta": {"falcon": "write to bob"}}]):
        _status, body = replied(deltas, guards)
        assert EMAIL.encode() not in body and b"falcon" not in body and b"error" in body


@pytest.mark.parametrize("deltas", [
    [{"x_meta": {"a-b": "mail john.doe@exa"}}, {"x_meta": {"a-b": "mple.com now"}}],
    [{"x-meta": "mail john.doe@exa"}, {"x-meta": "mple.com now"}],
    [{"x_meta": {**{f"k{i}": "v" for i in range(64)}, "t": "mail john.doe@exa"}},
     {"x_meta": {"t": "mple.com now"}}],
], ids=["odd-key", "odd-field", "many-keys"])
def test_any_key_and_any_size_is_read_as_the_sdk_joins_it(deltas: list[dict[str, Any]]) -> None:
    """Found by the review of the second fix: values under keys that are no identifiers,
    and objects of many keys, were read whole per event while the SDK still joins them."""
    body = stream([{"role": "assistant"}, *deltas])
    assert EMAIL.encode() not in body


def test_the_webhook_stream_guard_keeps_a_bounded_context() -> None:
    """Found by the review of the first fix: each path is a piece, and the webhook stream
    guard kept the delivered tail of every piece it ever saw (a new path in every event:
    24 MB for a 1.5 MB stream); it keeps the `MAX_OPEN_PIECES` most recent."""
    from extproc.guards.event_stream import MAX_OPEN_PIECES
    from extproc.guards.webhook import Verdict
    from extproc.guards.webhook_stream import WebhookStreamGuard

    async def passes(_texts: Any) -> Verdict:
        return Verdict("pass")

    async def run() -> WebhookStreamGuard:
        guard = WebhookStreamGuard("openai", "dlp", passes, 16, False, 1 << 20,
                                   lambda _g, _o: None)
        for e in range(MAX_OPEN_PIECES + 200):
            await guard.feed_async(event({"x": {f"k{e}": "some words here and there "}}))
        return guard

    guard = asyncio.run(run())
    assert not guard.stopped
    assert 0 < len(guard.context) <= MAX_OPEN_PIECES
