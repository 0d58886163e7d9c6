"""Texts of a whole reply that a client reads joined (a Gemini candidate's text parts, an
Anthropic message's text blocks, a Responses reply's `output_text` parts): a value split
between two of them is masked, or refused, as the same reply streamed is (found by review:
`jane.roe@` + `example.org` passed whole replies unmasked; google-genai's `.text`,
anthropic's `get_final_text()` and openai's `output_text` join them)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from extproc import protocol as P
from extproc.exchange import Exchange
from extproc.guards.joined import mask_joined
from extproc.guards.scanner import Scanner, builtin
from extproc.guards.settings import Guard
from tests.leaks import CONFIG, EMAIL, KEY
from tests.unit.test_exchange import (
    request_body,
    request_headers,
    response_body,
    response_headers,
    send,
)

GEMINI = "/v1beta/models/gemini-2.5-flash:generateContent"


def split(secret: str) -> tuple[str, str]:
    return f"write to {secret[:9]}", f"{secret[9:]} now"


def gemini(secret: str, thought: bool = False) -> tuple[str, str, dict, dict]:
    a, b = split(secret)
    parts: list[dict[str, Any]] = [{"text": a}, {"functionCall": {"name": "f", "args": {}}},
                                   {"text": b}]
    if thought:
        parts = [{"text": a, "thought": True}, {"text": b, "thought": True}, {"text": "ok"}]
    return "gemini", GEMINI, {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}, {
        "candidates": [{"content": {"role": "model", "parts": parts}, "index": 0,
                        "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 9,
                          "totalTokenCount": 14}}


def anthropic(secret: str, thought: bool = False) -> tuple[str, str, dict, dict]:
    a, b = split(secret)
    kind = "thinking" if thought else "text"
    blocks = [{"type": kind, kind: a}, {"type": kind, kind: b}]
    if thought:
        blocks.append({"type": "text", "text": "ok"})
    return "anthropic", "/v1/messages", {
        "model": "claude-x", "max_tokens": 99, "messages": [{"role": "user", "content": "hi"}]
    }, {"id": "m", "type": "message", "role": "assistant", "model": "claude-x",
        "stop_reason": "end_turn", "content": blocks,
        "usage": {"input_tokens": 5, "output_tokens": 9}}


def responses(secret: str, thought: bool = False) -> tuple[str, str, dict, dict]:
    a, b = split(secret)

    def message(i: int, text: str) -> dict[str, Any]:
        return {"type": "message", "id": f"msg_{i}", "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}]}
    return "openai", "/v1/responses", {"model": "gpt-4o-mini", "input": "hi"}, {
        "id": "r", "object": "response", "created_at": 1, "status": "completed",
        "model": "gpt-4o-mini",
        "output": [message(1, a), {"type": "web_search_call", "id": "ws", "status": "done"},
                   message(2, b)],
        "usage": {"input_tokens": 5, "output_tokens": 9, "total_tokens": 14}}


async def _whole(route: str, path: str, req: dict, doc: dict) -> tuple[int | None, bytes]:
    ex = Exchange(CONFIG.route(route), route, CONFIG.server.max_request_body_bytes)
    await send(ex, request_headers({":path": path}, req_mode=P.BUFFERED, resp_mode=P.BUFFERED))
    await send(ex, request_body(json.dumps(req).encode(), True))
    await send(ex, response_headers(200, **{"content-type": "application/json"}))
    (reply,) = await send(ex, response_body(json.dumps(doc).encode(), True))
    if reply.HasField("immediate_response"):
        return reply.immediate_response.status.code, reply.immediate_response.body
    return None, reply.response_body.response.body_mutation.body


def whole(case: tuple[str, str, dict, dict]) -> tuple[int | None, bytes]:
    return asyncio.run(_whole(*case))


@pytest.mark.parametrize(("shape", "thought"), [
    (gemini, False), (gemini, True), (anthropic, False), (anthropic, True), (responses, False)])
def test_a_value_split_between_joined_texts_is_masked(shape: Any, thought: bool) -> None:
    status, body = whole(shape(EMAIL, thought))
    assert status is None and b"<EMAIL>" in body, body
    for piece in (EMAIL[:9], EMAIL[9:]):
        assert piece.encode() not in body, body
    doc = json.loads(body)   # each text kept its place: the first holds the placeholder
    texts = json.dumps(doc)
    assert texts.index("write to <EMAIL>") < texts.index(" now")


@pytest.mark.parametrize("shape", [gemini, anthropic, responses])
def test_a_value_split_between_joined_texts_is_refused(shape: Any) -> None:
    status, body = whole(shape(KEY))
    assert status == 400 and b"keys" in body and KEY[:9].encode() not in body, body


def test_a_reply_with_nothing_split_is_as_it_was() -> None:
    case = gemini("nothing-here")
    status, body = whole(case)
    assert status is None and json.loads(body or json.dumps(case[3])) == case[3]


SCANNER = Scanner(builtin(["email"]))
GUARD = Guard(name="pii", action="mask", scanner=SCANNER)


@given(text=st.text(st.sampled_from("ab .@xyz-"), max_size=40),
       cuts=st.lists(st.integers(0, 60), max_size=4))
@example(text="write to jane.roe@example.org now", cuts=[16, 25])
def test_joined_masking_masks_the_join_and_keeps_every_text_in_place(text: str,
                                                                     cuts: list[int]) -> None:
    """Whatever the cut: the texts joined are the whole text masked (a text wholly inside a
    value holding its placeholder again), and no text is left empty (a property of
    `mask_joined`, sans-IO)."""
    import re
    points = sorted({c % (len(text) + 1) for c in cuts})
    texts = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    masked: dict[str, set[str]] = {}
    out = mask_joined([GUARD], texts, masked)
    assert len(out) == len(texts)
    assert all(new for old, new in zip(texts, out, strict=True) if old)

    def once(s: str) -> str:
        return re.sub(r"(?:<EMAIL>)+", "<EMAIL>", s)
    assert once("".join(out)) == once(SCANNER.mask(text))
    assert bool(masked) == (SCANNER.find(text) != [])


def test_a_text_wholly_inside_a_value_is_never_left_empty() -> None:
    """A provider refuses an empty text block or part sent back as history (found by
    review): a text the rest of a value filled holds its placeholder too."""
    texts = ["write to jane.ro", "e@exam", "ple.org", " now"]
    out = mask_joined([GUARD], texts, {})
    assert out == ["write to <EMAIL>", "<EMAIL>", "<EMAIL>", " now"]
    _, body = whole(anthropic(EMAIL))   # (the second block: "org now", kept)
    assert all(b["text"] for b in json.loads(body)["content"]), body


def test_an_empty_placeholder_leaves_no_text_empty() -> None:
    """A webhook may mask with an empty placeholder: a text wholly inside such a value gets
    the default one rather than nothing (found by review)."""
    from extproc.guards.joined import Cut, split_joined
    from extproc.guards.webhook import DEFAULT_PLACEHOLDER
    assert split_joined(["ab", "cd", "ef"], [Cut(1, 5, "")]) == ["a", DEFAULT_PLACEHOLDER, "f"]


def openai_list(secret: str) -> tuple[str, str, dict, dict]:
    """An OpenAI-compatible server's chat reply whose content is a list of text parts."""
    a, b = split(secret)
    return "openai", "/v1/chat/completions", {
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}, {
        "id": "c", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {
            "role": "assistant", "content": [{"type": "text", "text": a},
                                             {"type": "text", "text": b}]}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14}}


def test_a_chat_reply_of_text_parts_is_read_joined() -> None:
    status, body = whole(openai_list(EMAIL))
    assert status is None and b"<EMAIL>" in body and EMAIL[9:].encode() not in body, body
    status, body = whole(openai_list(KEY))
    assert status == 400, body


def test_a_webhook_guard_reads_joined_texts_as_one_text(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    """A webhook guard on whole replies gets each group joined, in a call of its own, and
    its masks are made across the texts (found by review: it got them apart)."""
    from extproc import loader
    from extproc.guards import webhook_client
    from extproc.guards.webhook import Mask, Verdict
    calls: list[list[str]] = []

    async def check(_spec: Any, call: Any) -> Verdict:   # the sample webhook, masking email
        calls.append([t.text for t in call.texts])
        masks = tuple(Mask(i, s.start, s.end, "<EMAIL>") for i, t in enumerate(call.texts)
                      for s in SCANNER.find(t.text))
        return Verdict("mask", masks) if masks else Verdict("pass")
    monkeypatch.setattr(webhook_client, "check", check)
    cfg = loader.parse({"guards": {"dlp": {"webhook": {"url": "http://127.0.0.1:9/check"},
                                           "apply_to": ["response"]}},
                        "routes": [{"name": p, "provider": p, "guards": ["dlp"]}
                                   for p in ("gemini", "anthropic", "openai")]})
    for shape in (gemini, anthropic, responses, openai_list):
        calls.clear()
        route, path, req, doc = shape(EMAIL)
        monkeypatch.setattr(__import__("tests.unit.test_guard_joined", fromlist=["CONFIG"]),
                            "CONFIG", cfg)
        status, body = whole((route, path, req, doc))
        assert status is None and b"<EMAIL>" in body, (shape.__name__, body)
        assert EMAIL[:9].encode() not in body and EMAIL[9:].encode() not in body, body
        assert any(EMAIL in text for texts in calls for text in texts), calls
        assert len(calls) == 1, calls   # one call: the group in it, joined, not apart
        assert not any(EMAIL[:9] in t and EMAIL not in t for t in calls[0]), calls
