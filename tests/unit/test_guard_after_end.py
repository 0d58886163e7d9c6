"""Text for a piece after the event that ended it (a finish reason, a content block's stop,
a Responses `.done`, a stream-level stop, `[DONE]`) ends a guarded stream refused, for the
local maskers and the webhook guard alike.

A client joins such text to the piece it continues, while read on its own a value split
around the end would go out in clear: `john.doe@exa`, finish, `mple.com`. Relays that put
a finish reason on every chunk would turn streamed masking into per-chunk masking. Pieces
that did not end (another choice, another block) go on."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.guards.reframe import SSEMaskingReframer
from extproc.guards.reframe_responses import ResponsesMaskingReframer
from extproc.guards.scanner import Scanner, builtin
from extproc.guards.stream import StreamMasker
from extproc.guards.webhook import Mask, Text, Verdict
from extproc.guards.webhook_stream import WebhookStreamGuard
from extproc.providers.openai_legacy import OpenAICompletionsAdapter

SCANNER = Scanner(builtin(["email", "phone", "card"]))
HALVES = ("mail john.doe@exa", "mple.com now")
REFUSED = b"response blocked by a guard"


def _sse(events: list[Any], crlf: bool = False) -> bytes:
    end = b"\r\n\r\n" if crlf else b"\n\n"
    out = []
    for ev in events:
        if ev == "[DONE]":
            out.append(b"data: [DONE]" + end)
        elif isinstance(ev, tuple):
            name, doc = ev
            out.append(f"event: {name}\ndata: {json.dumps(doc)}".encode() + end)
        else:
            out.append(b"data: " + json.dumps(ev).encode() + end)
    return b"".join(out)


def _chat(index: int, text: str | None, finish: str | None = None) -> dict[str, Any]:
    delta = {} if text is None else {"content": text}
    return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": index, "delta": delta, "finish_reason": finish}]}


def _legacy(index: int, text: str, finish: str | None = None) -> dict[str, Any]:
    return {"id": "c", "object": "text_completion", "created": 1, "model": "m",
            "choices": [{"index": index, "text": text, "finish_reason": finish,
                         "logprobs": None}]}


def _block(index: int, text: str) -> tuple[str, dict[str, Any]]:
    return ("content_block_delta", {"type": "content_block_delta", "index": index,
                                    "delta": {"type": "text_delta", "text": text}})


def _start(index: int) -> tuple[str, dict[str, Any]]:
    return ("content_block_start", {"type": "content_block_start", "index": index,
                                    "content_block": {"type": "text", "text": ""}})


def _stop(index: int) -> tuple[str, dict[str, Any]]:
    return ("content_block_stop", {"type": "content_block_stop", "index": index})


MESSAGE_START = ("message_start", {"type": "message_start", "message": {
    "id": "m", "type": "message", "role": "assistant", "content": [], "model": "c",
    "stop_reason": None, "usage": {"input_tokens": 1, "output_tokens": 1}}})
MESSAGE_DELTA = ("message_delta", {"type": "message_delta",
                                   "delta": {"stop_reason": "end_turn"},
                                   "usage": {"output_tokens": 5}})


def _gemini(text: str, finish: str | None = None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"index": 0, "content": {"role": "model",
                                                         "parts": [{"text": text}]}}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "modelVersion": "gemini-2.0-flash"}


def _responses_delta(text: str) -> tuple[str, dict[str, Any]]:
    return ("response.output_text.delta", {
        "type": "response.output_text.delta", "item_id": "msg", "output_index": 0,
        "content_index": 0, "delta": text})


def _responses_done(text: str) -> tuple[str, dict[str, Any]]:
    return ("response.output_text.done", {
        "type": "response.output_text.done", "item_id": "msg", "output_index": 0,
        "content_index": 0, "text": text})


first, second = HALVES
#: (provider, adapter, events): the second half comes after its piece ended
AFTER_END: dict[str, tuple[str, Any, list[Any]]] = {
    "chat finish_reason": ("openai", None, [_chat(0, first, "stop"), _chat(0, second),
                                            "[DONE]"]),
    "chat after [DONE]": ("openai", None, [_chat(0, first), "[DONE]", _chat(0, second)]),
    "legacy finish_reason": ("openai", OpenAICompletionsAdapter("openai"),
                             [_legacy(0, first, "stop"), _legacy(0, second), "[DONE]"]),
    "anthropic block stop": ("anthropic", None, [MESSAGE_START, _start(0), _block(0, first),
                                                 _stop(0), _block(0, second)]),
    "anthropic message_delta": ("anthropic", None, [MESSAGE_START, _start(0),
                                                    _block(0, first), MESSAGE_DELTA,
                                                    _block(0, second)]),
    "gemini finishReason": ("gemini", None, [_gemini(first, "STOP"), _gemini(second)]),
    "gemini STOP on every chunk": ("gemini", None, [_gemini(first, "STOP"),
                                                    _gemini(second, "STOP")]),
}


def _masked(provider: str, adapter: Any, raw: bytes, cut: int) -> bytes:
    t = SSEMaskingReframer(provider, lambda: [StreamMasker(SCANNER)], 1 << 20,
                           adapter=adapter)
    return t.feed(raw[:cut]) + t.feed(raw[cut:]) + t.finish()


@pytest.mark.parametrize("case", sorted(AFTER_END))
@settings(max_examples=25, deadline=None)
@given(cut=st.integers(0, 1 << 12))
def test_text_after_its_pieces_end_is_refused_by_the_masker(case: str, cut: int) -> None:
    provider, adapter, events = AFTER_END[case]
    raw = _sse(events, crlf=provider == "gemini")
    out = _masked(provider, adapter, raw, cut % (len(raw) + 1))
    assert b"mple.com" not in out, out
    assert REFUSED in out


def test_the_responses_masker_refuses_a_delta_after_its_done() -> None:
    for events in ([_responses_delta(first), _responses_done(first), _responses_delta(second)],
                   [_responses_delta(first), ("response.completed", {
                       "type": "response.completed", "response": {
                           "id": "r", "object": "response", "status": "completed",
                           "output": []}}), _responses_delta(second)]):
        raw = _sse(events)
        t = ResponsesMaskingReframer("openai", lambda: [StreamMasker(SCANNER)], 1 << 20)
        out = t.feed(raw) + t.finish()
        assert b"mple.com" not in out and REFUSED in out, out


def test_pieces_that_did_not_end_go_on() -> None:
    """Another choice, another content block, another Gemini stream's chunks without a
    finish reason: masked across the events as ever, nothing refused."""
    cases = [
        ("openai", [_chat(1, "x", "stop"), _chat(0, first), _chat(0, second),
                    _chat(0, None, "stop"), "[DONE]"]),
        ("anthropic", [MESSAGE_START, _start(0), _block(0, "a"), _stop(0), _start(1),
                       _block(1, first), _block(1, second), _stop(1), MESSAGE_DELTA]),
        ("gemini", [_gemini(first), _gemini(second, "STOP")]),
    ]
    for provider, events in cases:
        raw = _sse(events, crlf=provider == "gemini")
        out = _masked(provider, None, raw, len(raw) // 2)
        assert REFUSED not in out, out
        assert b"<EMAIL>" in out and b"john" not in out, out


class _EmailHook:
    """A webhook that masks e-mail addresses in what it is sent."""

    async def __call__(self, texts: list[Text]) -> Verdict:
        email = builtin(["email"])[0]
        masks = tuple(Mask(i, s.start, s.end, "<EMAIL>")
                      for i, t in enumerate(texts) for s in email.find(t.text))
        return Verdict("mask", masks) if masks else Verdict("pass")


@pytest.mark.parametrize("case", sorted(AFTER_END))
def test_text_after_its_pieces_end_is_refused_by_the_webhook_guard(case: str) -> None:
    provider, adapter, events = AFTER_END[case]
    raw = _sse(events, crlf=provider == "gemini")
    t = WebhookStreamGuard(provider, "dlp", _EmailHook(), 200, False, 1 << 20,
                           lambda g, o: None, adapter=adapter)

    async def go() -> bytes:
        return await t.feed_async(raw) + await t.finish_async()

    out = asyncio.run(go())
    assert b"mple.com" not in out, out
    assert b"blocked" in out


# --- what is not an end (the review of the change) ---------------------------------------

def _call(call: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    part = {"functionCall": call, **(extra or {})}
    return {"candidates": [{"content": {"role": "model", "parts": [part]}, "index": 0}]}


#: two get_weather calls in one Vertex stream, each streaming `$.location` (go-genai's
#: TestChatStoresStreamedFunctionCallTurn; streamFunctionCallArguments)
TWO_CALLS = [
    _call({"name": "get_weather", "willContinue": True}, {"thoughtSignature": "c2ln"}),
    _call({"partialArgs": [{"jsonPath": "$.location", "stringValue": "New ",
                            "willContinue": True}], "willContinue": True}),
    _call({"partialArgs": [{"jsonPath": "$.location", "stringValue": "Delhi"}],
           "willContinue": True}),
    _call({}),
    _call({"name": "get_weather", "willContinue": True}),
    _call({"partialArgs": [{"jsonPath": "$.location", "stringValue": "San Francisco"}],
           "willContinue": True}),
    _call({}),
    {"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]},
                     "finishReason": "STOP", "index": 0}]},
]


def test_a_second_vertex_call_with_the_same_argument_path_goes_on() -> None:
    """A streamed argument's last piece ends that argument, not the path: the next call's
    argument of the same path is a new value, not text after an end."""
    raw = _sse(TWO_CALLS, crlf=True)
    out = _masked("vertex", None, raw, len(raw) // 3)
    assert REFUSED not in out and b"San Francisco" in out, out[-400:]

    class Pass:
        async def __call__(self, texts: list[Text]) -> Verdict:
            return Verdict("pass")

    guard = WebhookStreamGuard("vertex", "dlp", Pass(), 200, False, 1 << 20,
                               lambda g, o: None)

    async def go() -> bytes:
        return await guard.feed_async(raw) + await guard.finish_async()

    out = asyncio.run(go())
    assert b"blocked" not in out and b"San Francisco" in out, out[-400:]


def test_the_unspecified_finish_reason_ends_nothing() -> None:
    """Serialisers that write proto defaults put FINISH_REASON_UNSPECIFIED on every chunk."""
    raw = _sse([_gemini(first, "FINISH_REASON_UNSPECIFIED"), _gemini(second, "STOP")],
               crlf=True)
    out = _masked("gemini", None, raw, len(raw) // 2)
    assert REFUSED not in out and b"<EMAIL>" in out and b"john" not in out, out


def test_the_refusal_says_the_upstream_wrote_after_an_end() -> None:
    raw = _sse([_chat(0, first, "stop"), _chat(0, second), "[DONE]"])
    out = _masked("openai", None, raw, len(raw))
    assert b"after its end" in out, out
