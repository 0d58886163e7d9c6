"""ResponsesMaskingReframer: for any chunking of an OpenAI Responses stream, every text the
client can read (deltas, done events, parts, items, the completed response) is the guard's
masking of the whole text, the same in each place; a reject guard ends the stream with
`response.incomplete` + `error` before any part of the value goes out; the official SDK
reads what comes out; malformed events never crash it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.codecs.sse import SSEDecoder
from extproc.guards.reframe import json_chain
from extproc.guards.reframe_responses import ResponsesMaskingReframer
from extproc.guards.scanner import Scanner, builtin
from extproc.guards.stream import StreamMasker
from tests.jsonfuzz import json_values, spoil

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "endpoints"
SCANNER = Scanner(builtin(["email", "phone", "card"]))
EMAIL = "jane.roe@example.org"
FRAGMENTS = (b"jane", b"roe@", b"@exam", b"example.org")

# --------------------------------------------------------------------------- streams


def _response(status: str, output: list[Any], usage: Any) -> dict[str, Any]:
    return {"id": "resp_1", "object": "response", "created_at": 1756315696, "status": status,
            "error": None, "incomplete_details": None, "instructions": None,
            "model": "o4-mini", "output": output, "parallel_tool_calls": True,
            "tool_choice": "auto", "tools": [], "usage": usage}


def build(summary: list[str], text: list[str], args: list[str], refusal: list[str],
          logprobs: bool = False) -> bytes:
    """A consistent Responses stream: a reasoning summary (output 0), a message with an
    output_text part and a refusal part (output 1), a function call (output 2)."""
    s, t, a, r = ("".join(x) for x in (summary, text, args, refusal))
    lp = [{"token": "tok", "logprob": -0.1, "top_logprobs": []}] if logprobs else []
    reasoning = {"id": "rs_1", "type": "reasoning",
                 "summary": [{"type": "summary_text", "text": s}]}
    message = {"id": "msg_1", "type": "message", "status": "completed", "role": "assistant",
               "content": [{"type": "output_text", "annotations": [], "logprobs": lp,
                            "text": t},
                           {"type": "refusal", "refusal": r}]}
    call = {"id": "fc_1", "type": "function_call", "status": "completed", "call_id": "c1",
            "name": "send", "arguments": a}
    rs, ms, fc = ({"item_id": i, "output_index": n} for n, i in
                  enumerate(("rs_1", "msg_1", "fc_1")))
    ev: list[dict[str, Any]] = [
        {"type": "response.created", "response": _response("in_progress", [], None)},
        {"type": "response.in_progress", "response": _response("in_progress", [], None)},
        {"type": "response.output_item.added", "output_index": 0,
         "item": {**reasoning, "summary": []}},
        {"type": "response.reasoning_summary_part.added", **rs, "summary_index": 0,
         "part": {"type": "summary_text", "text": ""}},
        *({"type": "response.reasoning_summary_text.delta", **rs, "summary_index": 0,
           "delta": p, "obfuscation": "pad"} for p in summary),
        {"type": "response.reasoning_summary_text.done", **rs, "summary_index": 0,
         "text": s},
        {"type": "response.reasoning_summary_part.done", **rs, "summary_index": 0,
         "part": {"type": "summary_text", "text": s}},
        {"type": "response.output_item.done", "output_index": 0, "item": reasoning},
        {"type": "response.output_item.added", "output_index": 1,
         "item": {**message, "status": "in_progress", "content": []}},
        {"type": "response.content_part.added", **ms, "content_index": 0,
         "part": {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}},
        *({"type": "response.output_text.delta", **ms, "content_index": 0, "delta": p,
           "logprobs": lp, "obfuscation": "pad"} for p in text),
        {"type": "response.output_text.done", **ms, "content_index": 0, "text": t,
         "logprobs": lp},
        {"type": "response.content_part.done", **ms, "content_index": 0,
         "part": message["content"][0]},
        {"type": "response.content_part.added", **ms, "content_index": 1,
         "part": {"type": "refusal", "refusal": ""}},
        *({"type": "response.refusal.delta", **ms, "content_index": 1, "delta": p}
          for p in refusal),
        {"type": "response.refusal.done", **ms, "content_index": 1, "refusal": r},
        {"type": "response.content_part.done", **ms, "content_index": 1,
         "part": message["content"][1]},
        {"type": "response.output_item.done", "output_index": 1, "item": message},
        {"type": "response.output_item.added", "output_index": 2,
         "item": {**call, "status": "in_progress", "arguments": ""}},
        *({"type": "response.function_call_arguments.delta", **fc, "delta": p}
          for p in args),
        {"type": "response.function_call_arguments.done", **fc, "arguments": a},
        {"type": "response.output_item.done", "output_index": 2, "item": call},
        {"type": "response.completed", "response": _response(
            "completed", [reasoning, message, call],
            {"input_tokens": 5, "output_tokens": 9, "total_tokens": 14})},
    ]
    out = []
    for number, event in enumerate(ev):
        event = {"type": event["type"], "sequence_number": number,
                 **{k: v for k, v in event.items() if k != "type"}}
        out.append(f"event: {event['type']}\ndata: "
                   f"{json.dumps(event, separators=(',', ':'))}\n\n".encode())
    return b"".join(out)


# --------------------------------------------------------------- what the client reads

KEYS = ("summary", "text", "refusal", "args")   # the pieces of `build`


def docs(raw: bytes) -> list[dict[str, Any]]:
    decoder = SSEDecoder()
    out = []
    for ev in [*decoder.feed(raw), *decoder.finish()]:
        if ev.has_data:
            doc = json.loads(ev.data)
            assert ev.event == doc["type"]
            out.append(doc)
    return out


def readable(raw: bytes) -> dict[str, dict[str, str]]:
    """Per piece, the text each kind of event shows: its deltas joined, its done event, its
    part, its item and the completed response."""
    seen: dict[str, dict[str, str]] = {k: {} for k in KEYS}

    def put(piece: str, where: str, text: str) -> None:
        seen[piece][where] = seen[piece].get(where, "") + text if where == "deltas" else text

    def item(where: str, index: int, obj: dict[str, Any]) -> None:
        if index == 0:
            put("summary", where, obj["summary"][0]["text"])
        elif index == 1:
            put("text", where, obj["content"][0]["text"])
            put("refusal", where, obj["content"][1]["refusal"])
        else:
            put("args", where, obj["arguments"])

    for doc in docs(raw):
        kind = doc["type"]
        if kind.endswith(".delta"):
            piece = {"response.reasoning_summary_text.delta": "summary",
                     "response.output_text.delta": "text",
                     "response.refusal.delta": "refusal",
                     "response.function_call_arguments.delta": "args"}[kind]
            put(piece, "deltas", doc["delta"])
        elif kind == "response.reasoning_summary_text.done":
            put("summary", "done", doc["text"])
        elif kind == "response.output_text.done":
            put("text", "done", doc["text"])
        elif kind == "response.refusal.done":
            put("refusal", "done", doc["refusal"])
        elif kind == "response.function_call_arguments.done":
            put("args", "done", doc["arguments"])
        elif kind == "response.reasoning_summary_part.done":
            put("summary", "part", doc["part"]["text"])
        elif kind == "response.content_part.done":
            part = doc["part"]
            if doc["content_index"] == 0:
                put("text", "part", part["text"])
            else:
                put("refusal", "part", part["refusal"])
        elif kind == "response.output_item.done":
            item("item", doc["output_index"], doc["item"])
        elif kind == "response.completed":
            for index, obj in enumerate(doc["response"]["output"]):
                item("completed", index, obj)
    return seen


def run(raw: bytes, cuts: list[int], action: str = "mask",
        rejected: list[str] | None = None) -> list[bytes]:
    t = ResponsesMaskingReframer(
        "openai", lambda: [StreamMasker(SCANNER, action=action)], 1 << 20,
        rejected.append if rejected is not None else None)
    points = sorted({c % (len(raw) + 1) for c in cuts})
    out = []
    for a, b in zip([0, *points], [*points, len(raw)], strict=True):
        out.append(t.feed(raw[a:b]))
    out.append(t.finish())
    return out


PIECES = [EMAIL, "jane", ".roe@", "example.org", " ", "mail ", "now.", "4111 1111 1111 1111",
          "call +1 415 555 0100", "hello ", "naïve ", "日本語", "😀", '"quoted"', "\\", "\n",
          "{\"to\":\"", "\"}", ""]
TEXTS = st.lists(st.sampled_from(PIECES) | st.text(max_size=4), max_size=6)


@settings(max_examples=80, deadline=None)
@given(summary=TEXTS, text=TEXTS, args=TEXTS, refusal=TEXTS,
       cuts=st.lists(st.integers(0, 1 << 14), max_size=30),
       bytewise=st.sampled_from([False, False, False, True]))
def test_any_chunking_masks_every_readable_text_alike(
        summary: list[str], text: list[str], args: list[str], refusal: list[str],
        cuts: list[int], bytewise: bool) -> None:
    raw = build(summary, text, args, refusal)
    whole = b"".join(run(raw, []))
    chunks = run(raw, list(range(len(raw))) if bytewise else cuts)
    assert b"".join(chunks) == whole          # the chunking changes nothing at all
    wants = {"summary": summary, "text": text, "args": args, "refusal": refusal}
    seen = readable(whole)
    for piece, parts in wants.items():
        masked = masked_as(piece, "".join(parts))
        assert seen[piece].get("deltas", "") == masked
        for where in ("done", "part", "item", "completed"):
            if piece == "args" and where == "part":
                continue
            assert seen[piece][where] == masked, (piece, where)
    if not any(EMAIL in masked_as(piece, "".join(parts)) for piece, parts in wants.items()):
        assert EMAIL.encode() not in whole    # (`jane.roe@example.org0` is no e-mail)


def masked_as(piece: str, text: str) -> str:
    """The guard's masking of a piece's whole text: function call arguments are JSON source,
    masked token by token with their escapes decoded (`codecs.jsontext`); the other pieces
    are plain text."""
    if piece != "args":
        return SCANNER.mask(text)
    chain = json_chain([StreamMasker(SCANNER)])
    return chain.feed(text) + chain.finish()


def test_a_value_split_across_deltas_never_goes_out() -> None:
    raw = build(["Mail ja", "ne.roe@exa", "mple.org soon."], ["Write to ", "jane.roe@",
                                                           "example.org", " today."],
                ['{"to":"', "jane.roe", "@example.org", '"}'], ["No."])
    for cuts in ([], list(range(len(raw)))):
        chunks = run(raw, cuts)
        for chunk in chunks:
            for fragment in FRAGMENTS:
                assert fragment not in chunk
        seen = readable(b"".join(chunks))
        assert seen["text"]["completed"] == "Write to <EMAIL> today."
        assert seen["args"]["done"] == '{"to":"<EMAIL>"}'
        assert seen["summary"]["item"] == "Mail <EMAIL> soon."


def test_events_without_anything_to_mask_pass_byte_for_byte() -> None:
    raw = (GOLDEN / "openai_responses_failed_stream.sse").read_bytes()
    assert b"".join(run(raw, [7, 300])) == raw
    text = (GOLDEN / "openai_responses_text_stream.sse").read_bytes()
    out = b"".join(run(text, []))
    # the deltas carry the same text, shifted by what the masker held at each one; every
    # other event goes out as the very same bytes
    for block in text.split(b"\n\n"):
        if block and b"response.output_text.delta" not in block:
            assert block + b"\n\n" in out
    assert readable_text(out) == readable_text(text)


def readable_text(raw: bytes) -> str:
    return "".join(d["delta"] for d in docs(raw) if d["type"] == "response.output_text.delta")


def test_text_sent_only_whole_is_masked_too() -> None:
    """No deltas at all (a provider that sends items whole, or only `.done`): the whole
    texts are masked on their own, the same everywhere."""
    raw = build([], [], [], [])
    doc = docs(raw)
    for d in doc:
        if d["type"] == "response.output_text.done":
            d["text"] = f"to {EMAIL}"
        if d["type"] == "response.output_item.done" and d["output_index"] == 1:
            d["item"]["content"][0]["text"] = f"to {EMAIL}"
        if d["type"] == "response.completed":
            d["response"]["output"][1]["content"][0]["text"] = f"to {EMAIL}"
    raw = b"".join(f"event: {d['type']}\ndata: {json.dumps(d)}\n\n".encode() for d in doc)
    out = b"".join(run(raw, [11, 900]))
    assert EMAIL.encode() not in out
    seen = readable(out)
    assert seen["text"]["done"] == seen["text"]["item"] == seen["text"]["completed"] == \
        "to <EMAIL>"


def test_a_done_text_that_disagrees_with_its_deltas_is_masked_on_its_own() -> None:
    raw = build([], ["Hello ", "there."], [], [])
    raw = raw.replace(b'"text":"Hello there."', f'"text":"Hello {EMAIL}"'.encode())
    out = b"".join(run(raw, []))
    assert EMAIL.encode() not in out
    assert readable(out)["text"]["deltas"] == "Hello there."
    assert readable(out)["text"]["done"] == "Hello <EMAIL>"


def test_a_done_text_that_extends_its_deltas_delivers_the_rest_masked() -> None:
    raw = build([], ["Hello ", "there, "], [], [])
    raw = raw.replace(b'"text":"Hello there, "', f'"text":"Hello there, {EMAIL}"'.encode())
    out = b"".join(run(raw, []))
    assert EMAIL.encode() not in out
    seen = readable(out)["text"]
    assert seen["deltas"] == seen["done"] == "Hello there, <EMAIL>"


def test_logprobs_are_emptied_they_would_spell_the_text() -> None:
    raw = build([], ["a ", "b"], [], [], logprobs=True)
    out = b"".join(run(raw, []))
    assert b'"token"' not in out
    assert b'"logprobs":[]' in out


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(0, 1 << 14), max_size=30), where=st.sampled_from(KEYS))
def test_reject_ends_the_stream_before_the_value(cuts: list[int], where: str) -> None:
    parts = {k: ["ok ", "fine"] for k in KEYS}
    parts[where] = ["mail jane.r", "oe@exam", "ple.org", " now"]
    raw = build(parts["summary"], parts["text"], parts["args"], parts["refusal"])
    rejected: list[str] = []
    chunks = run(raw, cuts, "reject", rejected)
    out = b"".join(chunks)
    for chunk in chunks:
        for fragment in FRAGMENTS:
            assert fragment not in chunk
    assert rejected == ["email"]
    tail = docs(out)[-2:]
    assert tail[0]["type"] == "response.incomplete"
    assert tail[0]["response"]["status"] == "incomplete"
    assert tail[0]["response"]["incomplete_details"] == {"reason": "content_filter"}
    assert tail[0]["response"]["id"] == "resp_1"
    assert tail[1]["type"] == "error" and tail[1]["code"] == "content_filter"
    assert tail[1]["message"] == tail[1]["error"]["message"] == \
        "response blocked by a guard: it contains email"
    assert tail[1]["sequence_number"] == tail[0]["sequence_number"] + 1
    assert b"response.completed" not in out


# --------------------------------------------------------------------- the official SDK


def sdk_events(raw: bytes) -> list[Any]:
    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=raw,
                               headers={"content-type": "text/event-stream"})

    client = openai.OpenAI(api_key="k", base_url="http://test/v1", max_retries=0,
                           http_client=httpx2.Client(transport=httpx2.MockTransport(answer)))
    with client.responses.stream(model="m", input="hi") as stream:
        events = list(stream)
        events.append(stream.get_final_response())
    return events


def test_the_sdk_reads_the_masked_stream() -> None:
    raw = build(["Mail ja", "ne.roe@exa", "mple.org soon."], ["Write to ", "jane.roe@",
                                                           "example.org", " today."],
                ['{"to":"', "jane.roe", "@example.org", '"}'], [])
    *events, final = sdk_events(b"".join(run(raw, [5, 77, 1000])))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == final.output_text == "Write to <EMAIL> today."
    assert final.output[2].arguments == '{"to":"<EMAIL>"}'
    assert final.output[0].summary[0].text == "Mail <EMAIL> soon."


def test_the_sdk_raises_the_guard_error_on_a_refused_stream() -> None:
    raw = build([], ["Write to ", "jane.roe@", "example.org", " today."], [], [])
    out = b"".join(run(raw, [], "reject"))
    with pytest.raises(openai.APIError, match="response blocked by a guard"):
        sdk_events(out)


# --------------------------------------------------------------- malformed events


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_malformed_events_never_crash_the_reframer(data: st.DataObject) -> None:
    """Any value in any place of the events (an output_index that is a list, a delta that
    is an object, parts that are strings, ...): the stream goes on, nothing escapes."""
    raw = build(["a jane.r"], ["call jane.ro", "e@example.org"], ['{"x":"', 'y"}'], ["no"])
    keys = ["type", "delta", "text", "output_index", "content_index", "summary_index", "item",
            "part", "content", "response", "output", "logprobs", "arguments", "refusal"]
    events = docs(raw)
    spoiled = data.draw(st.lists(st.integers(0, len(events) - 1), min_size=1, max_size=4))
    out = b""
    for index, doc in enumerate(events):
        for _ in range(spoiled.count(index)):
            doc = spoil(doc, data, json_values(keys), 1)
        out += f"event: x\ndata: {json.dumps(doc)}\n\n".encode()
    action = data.draw(st.sampled_from(["mask", "reject"]))
    result = b"".join(run(out, data.draw(st.lists(st.integers(0, 1 << 12), max_size=5)),
                          action))
    assert isinstance(result, bytes)
    for junk in (b"data: [DONE]\n\n", b"data: {\n\n", b"data: 7\n\n", b": comment\n\n"):
        assert isinstance(b"".join(run(junk, [])), bytes)


def _event(doc: dict[str, Any]) -> bytes:
    return f"event: {doc['type']}\ndata: {json.dumps(doc)}\n\n".encode()


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(0, 1 << 12), max_size=20))
def test_event_types_it_does_not_model_are_read_anyway(cuts: list[int]) -> None:
    """Fail closed on what the masker was not written for (audio transcripts, citation
    annotations, a type newer than the code): a `*.delta` event's text streams through its
    own maskers, across events; any other event's strings are masked on their own."""
    half = len(EMAIL) // 2
    raw = b"".join(_event(d) for d in (
        {"type": "response.audio.transcript.delta", "output_index": 0,
         "delta": f"mail {EMAIL[:half]}"},
        {"type": "response.audio.transcript.delta", "output_index": 0,
         "delta": f"{EMAIL[half:]} ok"},
        {"type": "response.output_text.annotation.added", "item_id": "msg_1",
         "annotation": {"type": "url_citation", "title": f"by {EMAIL}", "url": "https://x"}},
        {"type": "response.some_future_event", "item_id": "it_1", "text": f"to {EMAIL}"},
        {"type": "response.completed", "response": {"id": "r", "output": []}}))
    out = b"".join(run(raw, cuts))
    assert EMAIL.encode() not in out
    assert out.count(b"<EMAIL>") == 3
    assert b'"item_id": "msg_1"' in out or b'"item_id":"msg_1"' in out   # ids are kept
