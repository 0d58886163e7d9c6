"""Guards read every text the model reads or writes (issue #8): each field that probing found
unread, in a request, in a whole reply and in a stream cut at any point, is masked (and
refused by a reject guard) by the local guards and seen by a webhook guard."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc import loader
from extproc.exchange import Exchange
from extproc.guards.policy import Guards
from extproc.guards.reframe import SSEMaskingReframer
from extproc.guards.replies import WholeJsonGuard
from extproc.guards.scanner import Scanner, builtin
from extproc.guards.stream import StreamMasker
from extproc.guards.webhook import Mask, Text, Verdict
from extproc.guards.webhook_stream import WebhookStreamGuard
from extproc.llm.transforms import PARSED_REPLY, JsonBodyObserver
from extproc.policy import Reject, run_transforms
from extproc.providers import adapter_for

EMAIL = "jane.roe@example.org"
KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET = f"mail {EMAIL}, key {KEY} now"
MASKED = "mail <EMAIL>, key <SECRET> now"
ARGS = json.dumps({"to": EMAIL, "key": KEY})
ARGS_MASKED = json.dumps({"to": "<EMAIL>", "key": "<SECRET>"})
FRAGMENTS = (b"jane", b"roe@", b"example.org", b"AKIA", b"FODNN7", b"7EXAMPLE")
SCANNER = Scanner(builtin(["email", "secrets"]))


def pieces(text: str) -> list[str]:
    """`text` in four pieces, both values split across them."""
    return [text[:9], text[9:20], text[20:36], text[36:]]


def no_fragment(raw: bytes) -> None:
    for fragment in FRAGMENTS:
        assert fragment not in raw, fragment


# ---------------------------------------------------------------------------- requests

def guards(action: str, provider: str, roles: list[str] | None = None,
           side: int = 0) -> Guards:
    spec: dict[str, Any] = {"detectors": ["email", "secrets"], "action": action}
    if roles is not None:
        spec["roles"] = roles
    cfg = loader.parse({"guards": {"g": spec},
                        "routes": [{"name": "r", "provider": provider, "guards": ["g"]}]})
    return [p for p in cfg.routes["r"].policies if isinstance(p, Guards)][side]


PATHS = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages",
         "gemini": "/v1beta/models/gemini-2.5-flash:generateContent"}

SCHEMA = {"type": "object", "properties": {"to": {"type": "string",
                                                  "description": f"e.g. {SECRET}"}}}

# (id, provider, body with SECRET in one field)
REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("openai-name", "openai", {"model": "m", "messages": [
        {"role": "user", "name": SECRET, "content": "hi"}]}),
    ("openai-developer", "openai", {"model": "m", "messages": [
        {"role": "developer", "content": SECRET}, {"role": "user", "content": "hi"}]}),
    ("openai-refusal", "openai", {"model": "m", "messages": [
        {"role": "assistant", "content": None, "refusal": SECRET},
        {"role": "user", "content": "hi"}]}),
    ("openai-refusal-part", "openai", {"model": "m", "messages": [
        {"role": "assistant", "content": [{"type": "refusal", "refusal": SECRET}]},
        {"role": "user", "content": "hi"}]}),
    ("openai-role-case", "openai", {"model": "m", "messages": [
        {"role": "SYSTEM", "content": SECRET}, {"role": "User", "content": SECRET}]}),
    ("openai-tool-description", "openai", {"model": "m", "messages": [
        {"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": {
            "name": "send", "description": SECRET, "parameters": SCHEMA}}]}),
    ("openai-legacy-functions", "openai", {"model": "m", "messages": [
        {"role": "user", "content": "hi"}], "functions": [
        {"name": "send", "description": SECRET, "parameters": SCHEMA}]}),
    ("anthropic-system-blocks", "anthropic", {"model": "m", "max_tokens": 9, "system": [
        {"type": "text", "text": "be brief."}, {"type": "text", "text": SECRET}],
        "messages": [{"role": "user", "content": "hi"}]}),
    ("anthropic-thinking", "anthropic", {"model": "m", "max_tokens": 9, "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": SECRET, "signature": "sig"},
            {"type": "text", "text": "ok"}]},
        {"role": "user", "content": "and?"}]}),
    ("anthropic-document-text", "anthropic", {"model": "m", "max_tokens": 9, "messages": [
        {"role": "user", "content": [
            {"type": "document", "title": SECRET, "context": SECRET,
             "source": {"type": "text", "media_type": "text/plain", "data": SECRET}},
            {"type": "text", "text": "summarise"}]}]}),
    ("anthropic-document-content", "anthropic", {"model": "m", "max_tokens": 9, "messages": [
        {"role": "user", "content": [
            {"type": "document", "source": {"type": "content", "content": [
                {"type": "text", "text": SECRET}]}},
            {"type": "text", "text": "summarise"}]}]}),
    ("anthropic-search-result", "anthropic", {"model": "m", "max_tokens": 9, "messages": [
        {"role": "user", "content": [
            {"type": "search_result", "source": f"https://x.test/?q={SECRET}", "title": SECRET,
             "content": [{"type": "text", "text": SECRET}]},
            {"type": "text", "text": "summarise"}]}]}),
    ("anthropic-tool-result-shapes", "anthropic", {"model": "m", "max_tokens": 9, "messages": [
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [
            {"type": "text", "text": SECRET},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                            "data": SECRET}},
            {"type": "search_result", "source": "s", "title": "t",
             "content": [{"type": "text", "text": SECRET}]}]}]}]}),
    ("anthropic-tools", "anthropic", {"model": "m", "max_tokens": 9, "messages": [
        {"role": "user", "content": "hi"}], "tools": [
        {"name": "send", "description": SECRET, "input_schema": SCHEMA}]}),
    ("anthropic-role-case", "anthropic", {"model": "m", "max_tokens": 9, "messages": [
        {"role": "User", "content": SECRET}]}),
    ("gemini-both-system-spellings", "gemini", {
        "systemInstruction": {"parts": [{"text": SECRET}]},
        "system_instruction": {"parts": [{"text": SECRET}]},
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
    ("gemini-thought", "gemini", {"contents": [
        {"role": "user", "parts": [{"text": "hi"}]},
        {"role": "model", "parts": [{"text": SECRET, "thought": True}, {"text": "ok"}]},
        {"role": "user", "parts": [{"text": "and?"}]}]}),
    ("gemini-tools", "gemini", {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                                "tools": [{"functionDeclarations": [
                                    {"name": "send", "description": SECRET,
                                     "parameters": SCHEMA}]}]}),
    ("gemini-role-case", "gemini", {"contents": [{"role": "USER", "parts": [{"text": SECRET}]}]}),
    # Vertex's streamed call arguments sent back in a model turn, and a call field newer
    # than the code (the body audit)
    ("vertex-partial-args", "gemini", {"contents": [
        {"role": "user", "parts": [{"text": "hi"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "f", "partialArgs": [
            {"jsonPath": "$.to", "stringValue": SECRET}], "willContinue": False}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {},
                                                         "newField": {"x": SECRET}}}]}]}),
]


def exchange(path: str) -> Exchange:
    ex = Exchange(route=None)
    ex.request_headers = {":path": path}
    return ex


@pytest.mark.parametrize(("provider", "body"), [(p, b) for _, p, b in REQUESTS],
                         ids=[i for i, _, _ in REQUESTS])
async def test_every_prompt_field_is_masked_and_rejected(provider: str,
                                                         body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    out = await guards("mask", provider).on_request_body(exchange(PATHS[provider]), raw)
    assert out is not None
    no_fragment(out)
    assert out.count(b"<EMAIL>") == raw.count(EMAIL.encode())
    assert out.count(b"<SECRET>") == raw.count(KEY.encode())
    assert json.loads(out).keys() == body.keys()
    with pytest.raises(Reject) as refused:
        await guards("reject", provider).on_request_body(exchange(PATHS[provider]), raw)
    assert refused.value.status == 400 and b"AKIA" not in refused.value.message.encode()


@pytest.mark.parametrize("spelling", ["User", "USER", "user"])
async def test_roles_compare_case_insensitively(spelling: str) -> None:
    body = json.dumps({"model": "m", "messages": [
        {"role": spelling, "content": SECRET}, {"role": "System", "content": SECRET},
        {"role": "critic", "content": SECRET}]}).encode()
    out = await guards("mask", "openai", roles=[spelling]).on_request_body(
        exchange(PATHS["openai"]), body)
    assert out is not None
    sent = [m["content"] for m in json.loads(out)["messages"]]
    # the configured role in any spelling, and a role no filter could name, are masked;
    # the system prompt is not in this guard's roles
    assert sent == [MASKED, SECRET, MASKED]


# ------------------------------------------------------------------------ whole replies

# (id, provider, reply with SECRET (or ARGS) in one field the model writes)
REPLIES: list[tuple[str, str, dict[str, Any]]] = [
    ("openai-second-choice", "openai", {"choices": [
        {"index": 0, "message": {"role": "assistant", "content": "fine"}},
        {"index": 1, "message": {"role": "assistant", "content": SECRET}}]}),
    ("openai-refusal", "openai", {"choices": [
        {"index": 0, "message": {"role": "assistant", "content": None, "refusal": SECRET}}]}),
    ("openai-reasoning", "openai", {"choices": [{"index": 0, "message": {
        "role": "assistant", "content": "ok", "reasoning_content": SECRET}}]}),
    ("openai-tool-arguments", "openai", {"choices": [{"index": 0, "message": {
        "role": "assistant", "content": None, "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": ARGS}}]}}]}),
    ("anthropic-thinking", "anthropic", {"type": "message", "content": [
        {"type": "thinking", "thinking": SECRET, "signature": "s"},
        {"type": "text", "text": "ok"}]}),
    ("anthropic-tool-input", "anthropic", {"type": "message", "content": [
        {"type": "tool_use", "id": "t", "name": "f", "input": {"to": EMAIL, "key": KEY}}]}),
    ("gemini-second-candidate", "gemini", {"candidates": [
        {"index": 0, "content": {"role": "model", "parts": [{"text": "fine"}]}},
        {"index": 1, "content": {"role": "model", "parts": [{"text": SECRET}]}}]}),
    ("gemini-thought", "gemini", {"candidates": [{"index": 0, "content": {
        "role": "model", "parts": [{"text": SECRET, "thought": True}, {"text": "ok"}]}}]}),
    ("gemini-function-call", "gemini", {"candidates": [{"index": 0, "content": {
        "role": "model", "parts": [{"functionCall": {"name": "f", "args": {
            "to": EMAIL, "key": KEY}}}]}}]}),
]


def whole(provider: str, action: str, body: dict[str, Any]) -> bytes:
    ex = exchange(PATHS[provider])
    transform = WholeJsonGuard(guards(action, provider, side=1), ex)
    transform.feed(json.dumps(body).encode())
    return transform.finish()


@pytest.mark.parametrize(("provider", "body"), [(p, b) for _, p, b in REPLIES],
                         ids=[i for i, _, _ in REPLIES])
def test_every_reply_field_is_masked_and_rejected(provider: str, body: dict[str, Any]) -> None:
    out = whole(provider, "mask", body)
    no_fragment(out)
    assert b"<EMAIL>" in out and b"<SECRET>" in out
    with pytest.raises(Reject) as refused:
        whole(provider, "reject", body)
    assert refused.value.status == 400 and "response blocked" in refused.value.message


@pytest.mark.parametrize(("provider", "body"), [(p, b) for _, p, b in REPLIES],
                         ids=[i for i, _, _ in REPLIES])
def test_the_reply_guard_takes_the_usage_meters_parse_only_of_the_same_bytes(
        provider: str, body: dict[str, Any]) -> None:
    """After the usage meter (which leaves its parse in the state) the guard masks exactly
    what it masks alone; a parse of other bytes left there is never used."""
    raw = json.dumps(body).encode()
    ex = exchange(PATHS[provider])
    meter = JsonBodyObserver(adapter_for(provider), lambda report: None, ex.state)
    out = run_transforms([meter, WholeJsonGuard(guards("mask", provider, side=1), ex)],
                         raw, True)
    assert out == whole(provider, "mask", body)
    assert PARSED_REPLY not in ex.state                     # taken, not kept
    ex = exchange(PATHS[provider])
    ex.state[PARSED_REPLY] = (b"{}", {})                  # stale: other bytes
    transform = WholeJsonGuard(guards("mask", provider, side=1), ex)
    transform.feed(raw)
    assert transform.finish() == out


# ----------------------------------------------------------------------------- streams

Events = list[tuple[str | None, Any]]     # (SSE event name, data object or "[DONE]")
Reader = Callable[[dict[str, Any]], str]  # the text of the field in one event


@dataclass
class Case:
    provider: str
    events: Events
    read: Reader
    text: str            # the field's text, whole
    masked: str          # what the client must read of it


def _oa(choices: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
            "model": "gpt-4o", "choices": choices}


def _oa_delta(index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}


def openai_case(field: str, wrap: Callable[[str], dict[str, Any]],
                read: Callable[[dict[str, Any]], str], text: str, masked: str,
                n: int = 1) -> Case:
    """A stream whose choice `n - 1` writes `text` in four pieces in a delta field."""
    events: Events = [(None, _oa([_oa_delta(i, {"role": "assistant", "content": ""})
                                  for i in range(n)]))]
    for k, piece in enumerate(pieces(text)):
        for i in range(n - 1):
            events.append((None, _oa([_oa_delta(i, {"content": f"fine {k} "})])))
        events.append((None, _oa([_oa_delta(n - 1, wrap(piece))])))
    events += [(None, _oa([_oa_delta(i, {}, "stop") for i in range(n)])), (None, "[DONE]")]

    def reader(doc: dict[str, Any]) -> str:
        return "".join(read(c["delta"]) for c in doc.get("choices") or ()
                       if c.get("index") == n - 1 and isinstance(c.get("delta"), dict))
    return Case("openai", events, reader, text, masked)


def _tool_args(delta: dict[str, Any]) -> str:
    return "".join(c["function"].get("arguments", "") for c in delta.get("tool_calls") or ()
                   if c.get("index") == 0)


def _an(kind: str, **fields: Any) -> tuple[str, dict[str, Any]]:
    return kind, {"type": kind, **fields}


def anthropic_case(start: dict[str, Any], delta: str, field: str, text: str, masked: str,
                   in_start: int = 0) -> Case:
    """A stream whose content block 1 writes `text` (its first `in_start` characters in the
    block's start, the rest in `delta` events), after a text block 0."""
    head = text[:in_start]
    block = {**start, field: head} if field in ("text", "thinking") else start
    events: Events = [
        _an("message_start", message={"id": "msg_1", "type": "message", "role": "assistant",
                                      "content": [], "usage": {"input_tokens": 5}}),
        _an("content_block_start", index=0, content_block={"type": "text", "text": ""}),
        _an("content_block_delta", index=0, delta={"type": "text_delta", "text": "Fine. "}),
        _an("content_block_stop", index=0),
        _an("content_block_start", index=1, content_block=block)]
    events += [_an("content_block_delta", index=1, delta={"type": delta, field: piece})
               for piece in pieces(text[in_start:]) if piece]
    events += [_an("content_block_stop", index=1),
               _an("message_delta", delta={"stop_reason": "end_turn"},
                   usage={"output_tokens": 9}),
               _an("message_stop")]

    def reader(doc: dict[str, Any]) -> str:
        if doc.get("index") != 1:
            return ""
        if doc.get("type") == "content_block_start":
            return doc["content_block"].get(field, "") if field != "partial_json" else ""
        if doc.get("type") == "content_block_delta":
            return doc["delta"].get(field, "")
        return ""
    return Case("anthropic", events, reader, text, masked)


def gemini_case(make: Callable[[str], dict[str, Any]], read: Callable[[dict[str, Any]], str],
                text: str, masked: str, n: int = 1) -> Case:
    """A stream whose candidate `n - 1` writes `text` in four pieces as `make(piece)`."""
    events: Events = []
    chunks = pieces(text)
    for k, piece in enumerate(chunks):
        candidates = [{"index": i, "content": {"role": "model", "parts": [
            {"text": f"fine {k} "}]}} for i in range(n - 1)]
        candidates.append({"index": n - 1, "content": {"role": "model", "parts": [make(piece)]}})
        if k == len(chunks) - 1:
            for c in candidates:
                c["finishReason"] = "STOP"
        events.append((None, {"candidates": candidates, "modelVersion": "gemini-2.5-flash"}))

    def reader(doc: dict[str, Any]) -> str:
        return "".join(read(p) for c in doc.get("candidates") or ()
                       if c.get("index") == n - 1
                       for p in (c.get("content") or {}).get("parts") or ())
    return Case("gemini", events, reader, text, masked)


def _gemini_call(doc_part: dict[str, Any]) -> str:
    call = doc_part.get("functionCall")
    return json.dumps(call["args"]) if call else ""


CASES: dict[str, Case] = {
    "openai-second-choice": openai_case("content", lambda p: {"content": p},
                                        lambda d: d.get("content") or "", SECRET, MASKED, n=2),
    "openai-refusal": openai_case("refusal", lambda p: {"refusal": p},
                                  lambda d: d.get("refusal") or "", SECRET, MASKED),
    "openai-reasoning": openai_case("reasoning_content", lambda p: {"reasoning_content": p},
                                    lambda d: d.get("reasoning_content") or "", SECRET, MASKED),
    "openai-tool-arguments": openai_case(
        "tool_calls", lambda p: {"tool_calls": [{"index": 0, "function": {"arguments": p}}]},
        _tool_args, ARGS, ARGS_MASKED),
    "openai-function-call": openai_case(
        "function_call", lambda p: {"function_call": {"arguments": p}},
        lambda d: (d.get("function_call") or {}).get("arguments", ""), ARGS, ARGS_MASKED),
    "anthropic-start-text": anthropic_case({"type": "text"}, "text_delta", "text", SECRET,
                                           MASKED, in_start=len(SECRET) - 4),
    "anthropic-thinking": anthropic_case({"type": "thinking", "signature": ""},
                                         "thinking_delta", "thinking", SECRET, MASKED),
    "anthropic-start-thinking": anthropic_case({"type": "thinking", "signature": ""},
                                               "thinking_delta", "thinking", SECRET, MASKED,
                                               in_start=12),
    "anthropic-tool-input": anthropic_case({"type": "tool_use", "id": "t", "name": "f",
                                            "input": {}}, "input_json_delta", "partial_json",
                                           ARGS, ARGS_MASKED),
    "gemini-second-candidate": gemini_case(lambda p: {"text": p},
                                           lambda p: p.get("text", ""), SECRET, MASKED, n=2),
    "gemini-thought": gemini_case(lambda p: {"text": p, "thought": True},
                                  lambda p: p.get("text", "") if p.get("thought") else "",
                                  SECRET, MASKED),
    "gemini-function-call": Case("gemini", [(None, {"candidates": [{"index": 0, "content": {
        "role": "model", "parts": [{"functionCall": {"name": "f", "args": {"to": EMAIL,
                                                                           "key": KEY}}}]},
        "finishReason": "STOP"}]})], lambda d: "".join(
            _gemini_call(p) for c in d.get("candidates") or ()
            for p in (c.get("content") or {}).get("parts") or ()),
        json.dumps({"to": EMAIL, "key": KEY}), json.dumps({"to": "<EMAIL>", "key": "<SECRET>"})),
    "anthropic-start-input": Case("anthropic", [
        _an("content_block_start", index=0, content_block={
            "type": "tool_use", "id": "t", "name": "f", "input": {"to": EMAIL, "key": KEY}}),
        _an("content_block_stop", index=0), _an("message_stop")],
        lambda d: json.dumps(d["content_block"]["input"])
        if d.get("type") == "content_block_start" else "",
        json.dumps({"to": EMAIL, "key": KEY}), json.dumps({"to": "<EMAIL>", "key": "<SECRET>"})),
}


def wire(case: Case) -> bytes:
    sep = b"\r\n\r\n" if case.provider == "gemini" else b"\n\n"
    out = b""
    for name, doc in case.events:
        data = doc if isinstance(doc, str) else json.dumps(doc, separators=(",", ":"))
        out += (f"event: {name}\n" if name and case.provider == "anthropic" else "").encode()
        out += b"data: " + data.encode() + sep
    return out


def events_of(raw: bytes) -> list[dict[str, Any]]:
    out = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        for line in block.split(b"\n"):
            if line.startswith(b"data: ") and line[6:].strip() != b"[DONE]":
                out.append(json.loads(line[6:]))
    return out


def field_text(case: Case, raw: bytes) -> str:
    return "".join(case.read(doc) for doc in events_of(raw))


def reframe(case: Case, cuts: list[int], action: str) -> list[bytes]:
    raw = wire(case)
    t = SSEMaskingReframer(case.provider, lambda: [StreamMasker(SCANNER, action=action)],
                           1 << 20)
    points = sorted({c % (len(raw) + 1) for c in cuts})
    out = [t.feed(raw[a:b]) for a, b in zip([0, *points], [*points, len(raw)], strict=True)]
    return [*out, t.finish()]


def test_the_cases_carry_the_values_where_they_say() -> None:
    for name, case in CASES.items():
        raw = wire(case)
        assert field_text(case, raw) == case.text, name
        assert EMAIL in case.text and KEY in case.text, name


@settings(max_examples=400, deadline=None)
@given(name=st.sampled_from(sorted(CASES)), cuts=st.lists(st.integers(0, 1 << 14), max_size=30),
       bytewise=st.booleans())
def test_any_chunking_masks_every_field(name: str, cuts: list[int], bytewise: bool) -> None:
    case = CASES[name]
    chunks = reframe(case, list(range(len(wire(case)))) if bytewise else cuts, "mask")
    for chunk in chunks:
        no_fragment(chunk)
    out = b"".join(chunks)
    assert field_text(case, out) == case.masked
    assert frame(out) == frame(wire(case))   # every event but text deltas kept, in order


def frame(raw: bytes) -> list[Any]:
    """What a stream says besides its text deltas: event types, finish reasons, [DONE]."""
    out: list[Any] = [b"[DONE]" in raw]
    for doc in events_of(raw):
        if doc.get("type") not in (None, "content_block_delta"):
            out.append(doc["type"])
        for c in (doc.get("choices") or []) + (doc.get("candidates") or []):
            if c.get("finish_reason") or c.get("finishReason"):
                out.append((c["index"], c.get("finish_reason") or c.get("finishReason")))
    return out


@settings(max_examples=200, deadline=None)
@given(name=st.sampled_from(sorted(CASES)), cuts=st.lists(st.integers(0, 1 << 14), max_size=30))
def test_any_chunking_rejects_every_field_before_the_value(name: str, cuts: list[int]) -> None:
    case = CASES[name]
    chunks = reframe(case, cuts, "reject")
    out = b"".join(chunks)
    no_fragment(out)
    assert b"response blocked by a guard: it contains email" in out


def test_a_piece_ended_mid_hold_gets_its_rest_in_a_valid_event() -> None:
    """What is still held when a piece ends ("now" could still become an address) goes out
    just before the event that ends it, in the piece's own field and index."""
    docs = events_of(b"".join(reframe(CASES["anthropic-thinking"], [], "mask")))
    kinds = [(d["type"], d.get("index")) for d in docs]
    stop = kinds.index(("content_block_stop", 1))
    assert docs[stop - 1] == {"type": "content_block_delta", "index": 1,
                              "delta": {"type": "thinking_delta", "thinking": "now"}}
    docs = events_of(b"".join(reframe(CASES["openai-refusal"], [], "mask")))
    finish = next(i for i, d in enumerate(docs) if d["choices"][0]["finish_reason"])
    assert docs[finish - 1] == {"id": "chatcmpl-1", "object": "chat.completion.chunk",
                                "created": 1, "model": "gpt-4o", "choices": [
        {"index": 0, "delta": {"refusal": "now"}, "logprobs": None, "finish_reason": None}]}


def test_a_gemini_rest_event_leaves_other_candidates_out() -> None:
    """n > 1: the event that carries a candidate's held rest repeats no other candidate (the
    old copy of the last event re-sent candidate 1's raw text)."""
    case = gemini_case(lambda p: {"text": p}, lambda p: p.get("text", ""),
                       "write to " + EMAIL[:8], "", n=1)
    events = copy.deepcopy(case.events)
    # candidate 0 holds a possible address when the stream ends; candidate 1 wrote a value
    events[-1][1]["candidates"].append({"index": 1, "content": {"role": "model", "parts": [
        {"text": SECRET}]}})
    for _, doc in events:
        for c in doc["candidates"]:
            c.pop("finishReason", None)
    case.events = events
    out = b"".join(reframe(case, [], "mask"))
    no_fragment(out.replace(EMAIL[:8].encode(), b""))
    assert out.count(b"<SECRET>") == 1


# --- webhook guards read the same texts ------------------------------------------------

class EmailWebhook:
    """Masks e-mail addresses, like a DLP webhook would."""

    def __init__(self) -> None:
        self.calls: list[list[Text]] = []

    async def __call__(self, texts: list[Text]) -> Verdict:
        self.calls.append(texts)
        email = Scanner(builtin(["email"]))
        masks = tuple(Mask(i, s.start, s.end, "<EMAIL>")
                      for i, t in enumerate(texts) for s in email.find(t.text))
        return Verdict("mask", masks) if masks else Verdict("pass")


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(sorted(CASES)), cuts=st.lists(st.integers(0, 1 << 14), max_size=20))
def test_a_webhook_guard_sees_and_masks_every_field(name: str, cuts: list[int]) -> None:
    case = CASES[name]
    raw = wire(case)
    hook = EmailWebhook()
    t = WebhookStreamGuard(case.provider, "dlp", hook, 200, False, 1 << 20, lambda g, o: None)

    async def go() -> bytes:
        points = sorted({c % (len(raw) + 1) for c in cuts})
        out = [await t.feed_async(raw[a:b])
               for a, b in zip([0, *points], [*points, len(raw)], strict=True)]
        return b"".join([*out, await t.finish_async()])

    out = asyncio.run(go())
    assert EMAIL.encode() not in out
    assert field_text(case, out) == case.text.replace(EMAIL, "<EMAIL>")
    assert frame(out) == frame(raw)
    # the webhook was asked about the field's text (whole: one segment at the default size)
    assert any(t.text == case.text or (EMAIL in t.text and EMAIL in case.text)
               for call in hook.calls for t in call)


def test_blocks_nested_deeper_than_real_requests_are_read_whole() -> None:
    """Past 8 levels of tool results and documents an Anthropic block is read as its JSON
    (and masked string by string): no depth hides a value, and no depth is a crash."""
    from extproc.providers import adapter_for

    block: dict[str, Any] = {"type": "text", "text": SECRET}
    for _ in range(40):
        block = {"type": "tool_result", "tool_use_id": "t", "content": [
            {"type": "document", "source": {"type": "content", "content": [block]}}]}
    body = {"messages": [{"role": "user", "content": [block]}]}
    adapter = adapter_for("anthropic")
    texts = adapter.parse_request("/v1/messages", body).texts
    assert len(texts) == 1 and SECRET in texts[0][1]
    assert adapter.rewrite_request_texts("/v1/messages", body, lambda r, t: SCANNER.mask(t))
    out = json.dumps(body)
    assert EMAIL not in out and KEY not in out and MASKED in out


async def test_a_role_the_webhook_contract_does_not_name_is_sent_as_user(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from extproc.guards import webhook_client

    seen: list[list[Text]] = []

    async def check(spec: Any, call: Any) -> Verdict:
        seen.append(call.texts)
        return Verdict("pass")

    monkeypatch.setattr(webhook_client, "check", check)
    cfg = loader.parse({"guards": {"w": {"webhook": {"url": "http://dlp/check"},
                                         "roles": ["system"]}},
                        "routes": [{"name": "r", "provider": "openai", "guards": ["w"]}]})
    policy = next(p for p in cfg.routes["r"].policies if isinstance(p, Guards))
    body = json.dumps({"model": "m", "messages": [
        {"role": "Critic", "content": "one"}, {"role": "SYSTEM", "content": "two"},
        {"role": "user", "content": "three"}]}).encode()
    assert await policy.on_request_body(exchange(PATHS["openai"]), body) is None
    assert [(t.role, t.text) for t in seen[0]] == [("user", "one"), ("system", "two")]


@pytest.mark.parametrize(("provider", "asks"), [
    ("openai", {"logprobs": True}), ("openai", {"top_logprobs": 3}),
    ("gemini", {"generationConfig": {"responseLogprobs": True}}),
    ("gemini", {"generation_config": {"logprobs": 2}}),
    # as Google's proto3 JSON parser may read them: a count as a string, the flag as one,
    # the snake spelling beside a camel one that does not ask
    ("gemini", {"generationConfig": {"logprobs": "5"}}),
    ("gemini", {"generationConfig": {"responseLogprobs": "true"}}),
    ("gemini", {"generationConfig": {"temperature": 1},
                "generation_config": {"response_logprobs": True}})])
@pytest.mark.parametrize("apply_to", [["request", "response"], ["response"]])
async def test_a_request_for_log_probabilities_is_refused_where_guards_read_replies(
        provider: str, asks: dict[str, Any], apply_to: list[str]) -> None:
    """Log probabilities repeat the reply's tokens one by one: no guard can mask a value
    in them, so a route whose guards read replies refuses to ask for them."""
    def route(to: list[str]) -> Guards:
        cfg = loader.parse({"guards": {"g": {"detectors": ["email"], "apply_to": to}},
                            "routes": [{"name": "r", "provider": provider, "guards": ["g"]}]})
        return next(p for p in cfg.routes["r"].policies if isinstance(p, Guards))

    base: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]} \
        if provider == "openai" else {"contents": [{"parts": [{"text": "hi"}]}]}
    body = json.dumps({**base, **asks}).encode()
    ex = exchange(PATHS[provider])
    with pytest.raises(Reject) as refused:
        await route(apply_to).on_request_body(ex, body)
    assert refused.value.status == 400
    assert "token log probabilities" in refused.value.message
    assert ex.metadata["guard_request"] == "g:rejected:unreadable_reply"
    # without them, or where no guard reads replies, the request goes on
    assert await route(apply_to).on_request_body(ex, json.dumps(base).encode()) is None
    assert await route(["request"]).on_request_body(ex, body) is None
