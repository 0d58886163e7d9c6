"""No secret reaches the client in clear in what a reply says besides the model's text: the
citations and grounding a provider adds (the sources' titles, URLs and quoted passages, the
search queries, the passages retrieved, and Gemini's supported segments, which copy the
reply's own text, so they would show what the guard masked in it), on every format, in whole
replies and in streams cut anywhere. A mask guard masks each of their strings on its own; a
reject guard refuses the reply or ends the stream.

The exchanges and the config (`tests.leaks.CONFIG`: e-mail addresses masked, AWS keys
refused) are those of the other no-leak tests.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extproc import protocol as P
from tests.leak_replies import FORMATS
from tests.leaks import EMAILS, KEYS
from tests.unit.test_no_leaks_json_values import check
from tests.unit.test_no_leaks_streams import play
from tests.unit.test_no_leaks_whole import FORMATS as WHOLE

Doc = dict[str, Any]
#: the secret, and its placeholder (None: refused)
SECRETS = {"email": (EMAILS[0], "<EMAIL>"), "aws-key": (KEYS[0], None)}


def _said(secret: str) -> str:
    return f"write to {secret} today."


# --- Gemini / Vertex: a candidate's grounding, citations and finish message ----------------

GEMINI_FIELDS: dict[str, Callable[[str], Doc]] = {
    "search-query": lambda t: {"groundingMetadata": {"webSearchQueries": [t]}},
    "web-title": lambda t: {"groundingMetadata": {"groundingChunks": [
        {"web": {"uri": "https://x.test/a", "title": t, "domain": "x.test"}}]}},
    "retrieved-text": lambda t: {"grounding_metadata": {"grounding_chunks": [
        {"retrieved_context": {"uri": "gs://b/f", "title": "doc", "text": t}}]}},
    "supported-segment": lambda t: {"groundingMetadata": {"groundingSupports": [
        {"segment": {"startIndex": 0, "endIndex": len(t), "text": t},
         "groundingChunkIndices": [0], "confidenceScores": [0.9]}]}},
    "entry-point": lambda t: {"groundingMetadata": {"searchEntryPoint": {
        "renderedContent": f"<div>{t}</div>", "sdkBlob": "eyJxIjoieCJ9"}}},
    "citation-title": lambda t: {"citationMetadata": {"citations": [
        {"startIndex": 0, "endIndex": 5, "uri": "https://x.test/b", "title": t}]}},
    "finish-message": lambda t: {"finishMessage": t},
}


def gemini(field: str, text: str, n: int = 2, target: int = 1,
           said: str = "See the sources.") -> list[Doc]:
    """A stream (or its elements) whose last element carries the candidate's metadata, with
    `text` in it; the reply's own text is `said`."""
    first = {"candidates": [{"index": i, "content": {"role": "model", "parts": [
        {"text": said if i == target else f"fine {i}."}]}} for i in range(n)]}
    last = {"candidates": [{"index": i, "content": {"role": "model", "parts": [{"text": ""}]},
                            "finishReason": "STOP",
                            **(GEMINI_FIELDS[field](text) if i == target else {})}
                           for i in range(n)],
            "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 9,
                              "totalTokenCount": 14}, "modelVersion": "gemini-2.5-flash"}
    return [first, last]


def gemini_whole(field: str, text: str, said: str = "See the sources.") -> Doc:
    first, last = gemini(field, text, said=said)
    for candidate, said in zip(last["candidates"], first["candidates"], strict=True):
        candidate["content"] = said["content"]
    return last


# --- Anthropic: a text block's citations ---------------------------------------------------

def _citation(text: str, where: str) -> Doc:
    return {"type": "web_search_result_location", "url": "https://x.test/c",
            "title": text if where == "title" else "a page", "encrypted_index": "RW5j",
            "cited_text": text if where == "cited-text" else "quoted"}


def anthropic_whole(where: str, text: str) -> Doc:
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [{"type": "text", "text": "fine."},
                        {"type": "text", "text": "See the page.",
                         "citations": [_citation(text, where)]}],
            "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": 5, "output_tokens": 9}}


def anthropic(where: str, text: str) -> list[Doc]:
    start: Doc = {"type": "text", "text": ""}
    deltas = [{"type": "content_block_delta", "index": 0,
               "delta": {"type": "citations_delta", "citation": _citation(text, where)}}]
    if where == "in-start":
        start["citations"] = [_citation(text, "cited-text")]
        deltas = []
    return [
        {"type": "message_start", "message": {
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 5, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": start},
        *deltas,
        {"type": "content_block_delta", "index": 0,
         "delta": {"type": "text_delta", "text": "See the page."}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": 9}},
        {"type": "message_stop"}]


# --- OpenAI chat: a message's annotations --------------------------------------------------

def _annotation(text: str, where: str) -> Doc:
    url = f"https://x.test/?q={text}" if where == "url" else "https://x.test/d"
    return {"type": "url_citation", "url_citation": {
        "url": url, "title": text if where == "title" else "a page",
        "start_index": 0, "end_index": 3}}


def chat_whole(where: str, text: str) -> Doc:
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1,
            "model": "gpt-4o-mini-search-preview", "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "See.",
                                         "refusal": None,
                                         "annotations": [_annotation(text, where)]},
                 "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14}}


def chat(where: str, text: str) -> list[Doc]:
    def chunk(delta: Doc, finish: str | None = None) -> Doc:
        return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
                "model": "gpt-4o-mini-search-preview",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return [chunk({"role": "assistant", "content": ""}), chunk({"content": "See."}),
            chunk({"annotations": [_annotation(text, where)]}), chunk({}, "stop")]


# --- OpenAI Responses: an output_text part's annotations ----------------------------------

def _message(text: str) -> Doc:
    return {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": "See.", "annotations": [
                {"type": "url_citation", "url": "https://x.test/e", "title": text,
                 "start_index": 0, "end_index": 3},
                {"type": "file_citation", "file_id": "file_1", "filename": "notes.txt",
                 "index": 0}]}]}


def _response(status: str, output: list[Doc]) -> Doc:
    return {"id": "resp_1", "object": "response", "created_at": 1, "status": status,
            "model": "gpt-4o-mini", "output": output,
            "usage": {"input_tokens": 5, "output_tokens": 9, "total_tokens": 14}
            if status == "completed" else None}


def responses_whole(_: str, text: str) -> Doc:
    return _response("completed", [_message(text)])


def responses(_: str, text: str) -> list[Doc]:
    item = _message(text)
    annotation = item["content"][0]["annotations"][0]
    events = [
        {"type": "response.created", "response": _response("in_progress", [])},
        {"type": "response.output_item.added", "output_index": 0,
         "item": {**item, "status": "in_progress", "content": []}},
        {"type": "response.content_part.added", "output_index": 0, "item_id": "msg_1",
         "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}},
        {"type": "response.output_text.delta", "output_index": 0, "item_id": "msg_1",
         "content_index": 0, "delta": "See."},
        {"type": "response.output_text.annotation.added", "output_index": 0,
         "item_id": "msg_1", "content_index": 0, "annotation_index": 0,
         "annotation": annotation},
        {"type": "response.output_text.done", "output_index": 0, "item_id": "msg_1",
         "content_index": 0, "text": "See."},
        {"type": "response.content_part.done", "output_index": 0, "item_id": "msg_1",
         "content_index": 0, "part": item["content"][0]},
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed", "response": _response("completed", [item])}]
    return [dict(e, sequence_number=i) for i, e in enumerate(events)]


# --- the cases -----------------------------------------------------------------------------

WHOLE_CASES: list[tuple[str, str, Callable[[str, str], Doc]]] = [
    *[(fmt, f, gemini_whole) for fmt in ("gemini", "vertex") for f in GEMINI_FIELDS],
    *[("anthropic", w, anthropic_whole) for w in ("title", "cited-text")],
    *[(fmt, w, chat_whole) for fmt in ("openai-chat", "azure-chat") for w in ("title", "url")],
    *[(fmt, "title", responses_whole) for fmt in ("openai-responses", "azure-responses")],
]


@pytest.mark.parametrize(("fmt", "where", "build"), WHOLE_CASES,
                         ids=[f"{fmt}-{where}" for fmt, where, _ in WHOLE_CASES])
@pytest.mark.parametrize("kind", sorted(SECRETS))
@pytest.mark.parametrize("mode", [P.STREAMED, P.FULL_DUPLEX], ids=["buffered", "duplex"])
def test_a_secret_in_a_whole_replys_citations_is_guarded(
        fmt: str, where: str, build: Callable[[str, str], Doc], kind: str, mode: int) -> None:
    secret, placeholder = SECRETS[kind]
    doc = build(where, _said(secret))
    check(play(WHOLE[fmt][0], [doc], [11, 90, 300], mode), secret, placeholder)


STREAM_CASES: list[tuple[str, str, Callable[[str, str], list[Doc]]]] = [
    *[(fmt, f, gemini) for fmt in ("gemini-sse", "vertex-sse", "gemini-array-to-sse",
                                   "gemini-array-whole") for f in GEMINI_FIELDS],
    *[("anthropic", w, anthropic) for w in ("title", "cited-text", "in-start")],
    *[(fmt, w, chat) for fmt in ("openai-chat", "azure-chat") for w in ("title", "url")],
    *[(fmt, "title", responses) for fmt in ("openai-responses", "azure-responses")],
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(STREAM_CASES), kind=st.sampled_from(sorted(SECRETS)),
       data=st.data())
def test_a_secret_in_a_streams_citations_is_guarded_however_cut(
        case: tuple[str, str, Callable[[str, str], list[Doc]]], kind: str,
        data: st.DataObject) -> None:
    fmt, where, build = case
    secret, placeholder = SECRETS[kind]
    docs = build(where, _said(secret))
    raw_len = len(FORMATS[fmt].frame(docs))
    cuts = data.draw(st.lists(st.integers(0, raw_len), max_size=12))
    mode = data.draw(st.sampled_from([P.STREAMED, P.FULL_DUPLEX]))
    check(play(FORMATS[fmt], docs, cuts, mode), secret, placeholder)


def test_a_citation_without_a_secret_goes_out_unchanged() -> None:
    for fmt, where, build in WHOLE_CASES[:1] + WHOLE_CASES[-3:]:
        doc = build(where, "a plain title")
        out = play(WHOLE[fmt][0], [doc], [], P.STREAMED)
        assert out.refused is None and out.body == WHOLE[fmt][0].frame([doc])


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_a_grounded_segment_is_masked_as_the_text_it_copies(stream: bool) -> None:
    """Gemini's grounding repeats segments of the reply's text: masked, each reads as the
    masked text does, and the address shows in neither."""
    said = _said(EMAILS[0])
    if stream:
        out = play(FORMATS["gemini-sse"], gemini("supported-segment", said, said=said), [],
                   P.STREAMED)
        docs = [json.loads(line[6:]) for line in out.body.decode().split("\r\n")
                if line.startswith("data: ")]
    else:
        out = play(WHOLE["gemini"][0], [gemini_whole("supported-segment", said, said)], [],
                   P.STREAMED)
        docs = [json.loads(out.body)]
    assert EMAILS[0].encode() not in out.body
    texts = "".join(p.get("text", "") for d in docs for c in d["candidates"]
                    if c["index"] == 1 for p in c["content"]["parts"])
    [segment] = [s["segment"]["text"] for d in docs for c in d["candidates"]
                 for s in c.get("groundingMetadata", {}).get("groundingSupports", [])]
    assert texts == segment == "write to <EMAIL> today."


@pytest.mark.parametrize("kind", sorted(SECRETS))
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_a_field_of_an_openai_message_this_code_does_not_know_is_read(kind: str,
                                                                      stream: bool) -> None:
    """Fail closed: a field a provider adds to a chat message or delta (an OpenAI-compatible
    server's own, one newer than this code) has every string read whole."""
    secret, placeholder = SECRETS[kind]
    extra = {"x_notes": [{"id": "n_1", "type": "note", "text": _said(secret)}]}
    if stream:
        docs = chat("title", "plain")
        docs[1]["choices"][0]["delta"].update(extra)
        out = play(FORMATS["openai-chat"], docs, [], P.STREAMED)
    else:
        doc = chat_whole("title", "plain")
        doc["choices"][0]["message"].update(extra)
        out = play(WHOLE["openai-chat"][0], [doc], [], P.STREAMED)
    check(out, secret, placeholder)


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_an_anthropic_delta_this_code_does_not_know_is_read(kind: str) -> None:
    secret, placeholder = SECRETS[kind]
    docs = anthropic("title", "plain")
    docs.insert(3, {"type": "content_block_delta", "index": 0, "delta": {
        "type": "note_delta", "note": {"text": _said(secret), "signature": "c2ln"}}})
    check(play(FORMATS["anthropic"], docs, [], P.STREAMED), secret, placeholder)


@pytest.mark.parametrize("kind", sorted(SECRETS))
@pytest.mark.parametrize("fmt", ["gemini", "gemini-sse", "gemini-array-to-sse"])
def test_a_gemini_part_this_code_does_not_know_is_read(kind: str, fmt: str) -> None:
    secret, placeholder = SECRETS[kind]
    part = {"toolCall": {"id": "t1", "toolType": "SEARCH", "args": {"q": _said(secret)}},
            "thoughtSignature": "c2ln"}
    doc = gemini_whole("finish-message", "done")
    doc["candidates"][1]["content"]["parts"].append(part)
    spec = WHOLE[fmt][0] if fmt == "gemini" else FORMATS[fmt]
    check(play(spec, [doc], [], P.STREAMED), secret, placeholder)


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_a_responses_event_this_code_does_not_know_has_its_keys_read(kind: str) -> None:
    """An event type newer than the masker is read whole: its keys and numbers too."""
    secret, placeholder = SECRETS[kind]
    docs = responses("title", "plain")
    docs.insert(4, {"type": "response.note.done", "sequence_number": 4, "output_index": 0,
                    "note": {secret: "yes", "card": 4111111111111111}})
    out = play(FORMATS["openai-responses"], docs, [], P.STREAMED)
    check(out, secret, placeholder)
    assert b"4111111111111111" not in out.body
