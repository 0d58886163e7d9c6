"""Side texts: what a client shows of a reply besides the model's output. An error inside a
200 reply or a stream (OpenAI's error chunk, Anthropic's `error` event, Google's error
object, the Responses API's `error` event and a failed response), Anthropic's `stop_details`
and `message_start` content, Gemini's `promptFeedback`: mask guards mask them and reject
guards refuse them, streamed under any chunking and whole, as they do the output."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.guards.reframe import SSEMaskingReframer
from extproc.guards.reframe_responses import ResponsesMaskingReframer
from extproc.guards.scanner import Scanner, builtin
from extproc.guards.side_texts import side_slots
from extproc.guards.stream import StreamMasker
from tests.unit.test_reply_readable import exchange, sent

SCANNER = Scanner(builtin(["email", "secrets"]))
EMAIL = "john.doe@example.com"
KEY = "AKIAIOSFODNN7EXAMPLE"


def sse(*docs: dict[str, Any], named: bool = False) -> bytes:
    return b"".join((f"event: {d.get('type', 'x')}\n" if named else "").encode()
                    + b"data: " + json.dumps(d).encode() + b"\n\n" for d in docs)


def text_then(provider: str, side: dict[str, Any]) -> bytes:
    """A stream with some output, then the side text's event."""
    if provider == "openai":
        return sse({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                    "choices": [{"index": 0, "delta": {"content": "hi"},
                                 "finish_reason": None}]}, side)
    if provider == "anthropic":
        return sse({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}},
                   {"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": "hi"}}, side, named=True)
    return sse({"candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}]}}]},
               side)


SIDES = [
    ("openai", {"error": {"message": "saw {}", "type": "server_error", "code": None}}),
    ("anthropic", {"type": "error", "error": {"type": "overloaded_error",
                                              "message": "saw {}"}}),
    ("anthropic", {"type": "message_delta", "delta": {
        "stop_reason": "refusal", "stop_details": {"type": "refusal",
                                                   "explanation": "saw {}"}},
        "usage": {"output_tokens": 3}}),
    ("gemini", {"error": {"code": 500, "message": "saw {}", "status": "INTERNAL"}}),
    ("gemini", {"promptFeedback": {"blockReason": "OTHER", "blockReasonMessage": "saw {}"}}),
]


def run(provider: str, raw: bytes, action: str, cuts: list[int]) -> bytes:
    t = SSEMaskingReframer(provider, lambda: [StreamMasker(SCANNER, action=action)], 1 << 20)
    bounds = [0, *sorted({c % (len(raw) + 1) for c in cuts}), len(raw)]
    out = b"".join(t.feed(raw[a:b]) for a, b in itertools.pairwise(bounds) if b > a)
    return out + t.finish()


def fill(side: dict[str, Any], value: str) -> dict[str, Any]:
    return json.loads(json.dumps(side).replace("{}", value))


@settings(max_examples=60, deadline=None)
@given(case=st.sampled_from(SIDES), cuts=st.lists(st.integers(0, 2000), max_size=5))
def test_a_streamed_side_text_is_masked_or_refused(case: tuple[str, dict[str, Any]],
                                                   cuts: list[int]) -> None:
    provider, side = case
    out = run(provider, text_then(provider, fill(side, EMAIL)), "mask", cuts)
    assert EMAIL.encode() not in out and b"<EMAIL>" in out, out
    out = run(provider, text_then(provider, fill(side, KEY)), "reject", cuts)
    assert KEY.encode() not in out and b"aws access key" in out, out


def test_message_start_content_is_read() -> None:
    start = {"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
        "content": [{"type": "text", "text": f"saw {EMAIL}"}], "stop_reason": None,
        "usage": {"input_tokens": 1, "output_tokens": 1}}}
    out = run("anthropic", sse(start, named=True), "mask", [])
    assert EMAIL.encode() not in out and b"<EMAIL>" in out, out


@pytest.mark.parametrize("doc", [
    {"type": "error", "sequence_number": 3, "code": "server_error", "message": "saw {}",
     "param": None},
    {"type": "response.failed", "sequence_number": 3, "response": {
        "id": "resp_1", "object": "response", "status": "failed", "output": [],
        "error": {"code": "server_error", "message": "saw {}"}, "usage": None}},
], ids=["error", "failed"])
def test_a_responses_error_is_masked_or_refused(doc: dict[str, Any]) -> None:
    for value, action, gone in ((EMAIL, "mask", b"<EMAIL>"), (KEY, "reject", b"aws")):
        t = ResponsesMaskingReframer(
            "openai", lambda a=action: [StreamMasker(SCANNER, action=a)], 1 << 20)
        out = t.feed(sse(fill(doc, value), named=True)) + t.finish()
        assert value.encode() not in out and gone in out, out


@pytest.mark.parametrize("doc", [
    {"error": {"message": "saw {}", "type": "server_error"}},
    {"type": "error", "error": {"type": "api_error", "message": "saw {}"}},
    {"promptFeedback": {"blockReason": "OTHER", "blockReasonMessage": "saw {}"},
     "usageMetadata": {"promptTokenCount": 1, "totalTokenCount": 1}},
], ids=["openai", "anthropic-shaped", "gemini-feedback"])
def test_a_whole_200_reply_with_a_side_text_is_masked_or_refused(doc: dict[str, Any]) -> None:
    code, body = sent(exchange(200, json.dumps(fill(doc, EMAIL)).encode()))
    assert code is None and EMAIL.encode() not in body and b"<EMAIL>" in body, body
    code, body = sent(exchange(200, json.dumps(fill(doc, KEY)).encode()))
    assert code == 400 and KEY.encode() not in body and b"aws access key" in body, body


def test_an_ordinary_event_has_no_side_texts() -> None:
    for doc in ({"choices": [{"index": 0, "delta": {"content": "x"}}]},
                {"type": "content_block_delta", "index": 0, "delta": {"text": "x"}},
                {"type": "message_start", "message": {"content": []}},
                {"candidates": [], "error": None}):
        assert side_slots(doc) == []


LOGPROBS = [{"token": "jane", "logprob": -0.1, "bytes": [106], "top_logprobs": []}]


@pytest.mark.parametrize(("provider", "doc"), [
    ("openai", {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                "choices": [{"index": 0, "delta": {"content": "hi"},
                             "logprobs": {"content": LOGPROBS}, "finish_reason": None}]}),
    ("gemini", {"candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}]},
                                "logprobsResult": {"chosenCandidates": [
                                    {"token": "jane", "logProbability": -0.1}]}}]}),
])
def test_tokens_listed_unasked_end_the_stream_refused(provider: str,
                                                      doc: dict[str, Any]) -> None:
    """A request for log probabilities is refused before it is sent: an upstream that lists
    the reply's tokens one by one all the same (each a fragment no guard can read a value
    in) ends the stream refused; `"logprobs": null` is nothing."""
    out = run(provider, sse(doc), "mask", [])
    assert b"jane" not in out and (b"content_filter" in out or b"SAFETY" in out
                                   or b"error" in out), out
    quiet = json.loads(json.dumps(doc))
    for key in ("choices", "candidates"):
        for c in quiet.get(key, []):
            c.pop("logprobsResult", None)
            if "logprobs" in c:
                c["logprobs"] = None
    out = run(provider, sse(quiet), "mask", [])
    assert b"hi" in out and b"content_filter" not in out, out


def test_a_whole_reply_listing_its_tokens_is_refused() -> None:
    doc = {"id": "c", "object": "chat.completion", "created": 1, "model": "m",
           "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                        "logprobs": {"content": LOGPROBS}, "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
    code, body = sent(exchange(200, json.dumps(doc).encode()))
    assert code == 502 and b"jane" not in body and b"one by one" in body, body


def test_a_webhook_reads_the_side_texts_of_a_whole_reply() -> None:
    """A whole 200 reply's error message (or feedback) reaches a webhook reply guard with
    the reply's texts, and its masks are applied there (found by the review)."""
    import asyncio

    from extproc import loader
    from extproc.exchange import Exchange
    from extproc.guards.replies import WholeJsonGuard
    from extproc.guards.webhook import Mask, Verdict

    cfg = loader.parse({"guards": {"w": {"webhook": {"url": "http://dlp:9100/check"},
                                         "apply_to": ["response"]}},
                        "routes": [{"name": "r", "provider": "openai", "guards": ["w"]}]})
    policy = next(p for p in cfg.routes["r"].policies
                  if getattr(p, "response_webhooks", None))
    seen: list[str] = []

    async def ask(guard: Any, call: Any) -> Verdict:
        seen.extend(t.text for t in call.texts)
        at = next(i for i, t in enumerate(call.texts) if EMAIL in t.text)
        start = call.texts[at].text.index(EMAIL)
        return Verdict("mask", (Mask(at, start, start + len(EMAIL), "<EMAIL>"),))

    policy.ask_webhook = ask   # type: ignore[method-assign]
    ex = Exchange(cfg.routes["r"], "r")
    ex.request_headers = {":path": "/v1/chat/completions"}
    ex.status = 200
    doc = {"error": {"message": f"saw {EMAIL}", "type": "server_error"}}
    guard = WholeJsonGuard(policy, ex)

    async def run() -> bytes:
        return await guard.feed_async(json.dumps(doc).encode()) + await guard.finish_async()

    out = asyncio.run(run())
    assert f"saw {EMAIL}" in seen
    assert EMAIL.encode() not in out and b"saw <EMAIL>" in out, out
