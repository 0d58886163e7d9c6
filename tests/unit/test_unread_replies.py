"""Replies in media no guard can read (a generated image, speech, a PDF a server tool
fetched) are refused on a route whose guards read replies, unless every reply guard lets
that kind pass unread (`allow_unread`; `extproc.providers.unread`): default deny.

Two places stop them. A request that asks for such a reply (OpenAI's audio modality, the
Responses API's image generation tool, Gemini's image or audio modality) is refused before it
is sent, so no token is spent. A reply that carries one anyway (an image model answers with
images unasked) is refused whole with a 400 in the provider's format, or, once a stream has
started, ends with the provider's finish and error events, nothing of the media sent. Once
allowed, the media pass byte for byte and are never read as text (a mask guard must not
rewrite base64), while the reply's texts are still guarded. Driven through a real
`Exchange`, sans-IO, with each provider's wire forms."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extproc import loader
from extproc import protocol as P
from extproc.exchange import Exchange
from extproc.guards.webhook import Verdict
from extproc.guards.webhook_stream import WebhookStreamGuard
from extproc.providers.endpoints import classify
from extproc.providers.unread import NAMES
from extproc.reading import canonical_target
from tests.unit.test_exchange import (
    request_body,
    request_headers,
    response_body,
    response_headers,
    send,
)

EMAIL = "john.doe@example.com"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAAB"
WAV = "UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQAAAAA="
PDF = "JVBERi0xLjQKJcfsj6IKNSAwIG9iago="
CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
MESSAGES = "/v1/messages"
GEMINI = "/v1beta/models/gemini-2.5-flash-image:generateContent"
GEMINI_SSE = "/v1beta/models/gemini-2.5-flash-image:streamGenerateContent?alt=sse"
GEMINI_ARRAY = "/v1beta/models/gemini-2.5-flash-image:streamGenerateContent"
Body = dict[str, Any]

ASK = {
    "openai": {"model": "gpt-4o-audio-preview", "messages": [{"role": "user", "content": "hi"}]},
    "responses": {"model": "gpt-4.1", "input": "draw a cat"},
    "anthropic": {"model": "claude-sonnet-4-5", "max_tokens": 100,
                  "messages": [{"role": "user", "content": "fetch it"}]},
    "gemini": {"contents": [{"role": "user", "parts": [{"text": "draw a cat"}]}]},
}
ASK["open"] = ASK["openai"]    # a route without guards
PROVIDER = {"openai": "openai", "responses": "openai", "anthropic": "anthropic",
            "gemini": "gemini"}


def _gemini_reply(*parts: Body) -> Body:
    return {"candidates": [{"content": {"role": "model", "parts": [
        {"text": f"Here, {EMAIL}."}, *parts]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 1290,
                          "totalTokenCount": 1294}, "modelVersion": "gemini-2.5-flash-image"}


_WEB_FETCH = {"type": "web_fetch_tool_result", "tool_use_id": "srvtoolu_1", "content": {
    "type": "web_fetch_result", "url": "https://x.test/a.pdf", "retrieved_at": "2026-12-01",
    "content": {"type": "document", "source": {"type": "base64",
                                               "media_type": "application/pdf",
                                               "data": PDF}, "title": "a.pdf"}}}

#: (id, route, path, reply, kind): a whole reply carrying media no guard reads
WHOLE = [
    ("openai-audio", "openai", CHAT, {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-audio",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {
            "role": "assistant", "content": None, "refusal": None, "annotations": [],
            "audio": {"id": "audio_1", "data": WAV, "expires_at": 1795721497,
                      "transcript": f"Mail {EMAIL}."}}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14}}, "audio"),
    # an OpenAI-compatible server's content as parts (the streamed form ends refused too)
    ("openai-parts-image", "openai", CHAT, {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {
            "role": "assistant", "content": [
                {"type": "text", "text": f"Mail {EMAIL}."},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14}}, "image"),
    ("responses-image", "responses", RESPONSES, {
        "id": "resp_1", "object": "response", "status": "completed", "model": "gpt-4.1",
        "output": [{"id": "ig_1", "type": "image_generation_call", "status": "completed",
                    "background": "opaque", "output_format": "png", "quality": "high",
                    "size": "1024x1024", "revised_prompt": f"A cat for {EMAIL}",
                    "result": PNG},
                   {"id": "msg_1", "type": "message", "role": "assistant", "status":
                    "completed", "content": [{"type": "output_text", "annotations": [],
                                              "text": f"Done, {EMAIL}."}]}],
        "usage": {"input_tokens": 5, "output_tokens": 9, "total_tokens": 14}}, "image"),
    ("responses-interpreter-image", "responses", RESPONSES, {
        "id": "resp_1", "object": "response", "status": "completed", "model": "gpt-4.1",
        "output": [{"id": "ci_1", "type": "code_interpreter_call", "status": "completed",
                    "container_id": "cntr_1", "code": "plot()",
                    "outputs": [{"type": "image", "url": "https://x.test/plot.png"}]}],
        "usage": {"input_tokens": 5, "output_tokens": 9, "total_tokens": 14}}, "image"),
    ("gemini-image", "gemini", GEMINI, _gemini_reply(
        {"inlineData": {"mimeType": "image/png", "data": PNG}}), "image"),
    ("gemini-speech", "gemini", GEMINI, _gemini_reply(
        {"inline_data": {"mime_type": "audio/L16;codec=pcm;rate=24000", "data": WAV}}),
     "audio"),
    ("gemini-file", "gemini", GEMINI, _gemini_reply(
        {"fileData": {"mimeType": "video/mp4", "fileUri": "gs://b/v.mp4"}}), "video"),
    ("anthropic-fetched-pdf", "anthropic", MESSAGES, {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [{"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_fetch",
                     "input": {"url": "https://x.test/a.pdf"}}, _WEB_FETCH,
                    {"type": "text", "text": f"It names {EMAIL}."}],
        "stop_reason": "end_turn", "usage": {"input_tokens": 5, "output_tokens": 9}},
     "document"),
]
WHOLE_IDS = [c[0] for c in WHOLE]


def _sse(*docs: Body, event: bool = False, crlf: bool = False) -> bytes:
    end = b"\r\n\r\n" if crlf else b"\n\n"
    return b"".join((f"event: {d['type']}\n".encode() if event else b"")
                    + b"data: " + json.dumps(d).encode() + end for d in docs)


def _chunk(delta: Body, finish: str | None = None) -> Body:
    return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


#: (id, route, path, stream bytes, kind): a stream carrying media no guard reads
STREAMS = [
    ("openai-audio", "openai", CHAT, _sse(
        _chunk({"role": "assistant", "content": None}),
        _chunk({"audio": {"id": "audio_1", "transcript": "Mail "}}),
        _chunk({"audio": {"transcript": "me."}}),
        _chunk({"audio": {"data": WAV}}),
        _chunk({"audio": {"expires_at": 1795721497}}),
        _chunk({}, "stop")) + b"data: [DONE]\n\n", "audio"),
    ("responses-partial-image", "responses", RESPONSES, _sse(
        {"type": "response.output_item.added", "sequence_number": 1, "output_index": 0,
         "item": {"id": "ig_1", "type": "image_generation_call", "status": "in_progress"}},
        {"type": "response.image_generation_call.generating", "sequence_number": 2,
         "output_index": 0, "item_id": "ig_1"},
        {"type": "response.image_generation_call.partial_image", "sequence_number": 3,
         "output_index": 0, "item_id": "ig_1", "partial_image_index": 0,
         "partial_image_b64": PNG},
        {"type": "response.output_item.done", "sequence_number": 4, "output_index": 0,
         "item": {"id": "ig_1", "type": "image_generation_call", "status": "completed",
                  "revised_prompt": "A cat", "result": PNG}}, event=True), "image"),
    ("responses-image-item", "responses", RESPONSES, _sse(
        {"type": "response.output_item.done", "sequence_number": 4, "output_index": 0,
         "item": {"id": "ig_1", "type": "image_generation_call", "status": "completed",
                  "revised_prompt": "A cat", "result": PNG}}, event=True), "image"),
    ("responses-speech", "responses", RESPONSES, _sse(
        {"type": "response.audio.transcript.delta", "sequence_number": 1, "delta": "Hi "},
        {"type": "response.audio.delta", "sequence_number": 2, "delta": WAV},
        {"type": "response.audio.transcript.done", "sequence_number": 3},
        {"type": "response.audio.done", "sequence_number": 4}, event=True), "audio"),
    ("gemini-image", "gemini", GEMINI_SSE, _sse(
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "Here "}]},
                         "index": 0}]},
        {"candidates": [{"content": {"role": "model", "parts": [
            {"inlineData": {"mimeType": "image/png", "data": PNG}}]}, "index": 0,
            "finishReason": "STOP"}]}, crlf=True), "image"),
    ("anthropic-fetched-pdf", "anthropic", MESSAGES, _sse(
        {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role":
                                              "assistant", "content": [], "model": "c",
                                              "usage": {"input_tokens": 5,
                                                        "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": _WEB_FETCH},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
         "usage": {"output_tokens": 9}},
        {"type": "message_stop"}, event=True), "document"),
]
STREAM_IDS = [c[0] for c in STREAMS]


def config(allow: list[str] | None = None, apply_to: list[str] | None = None,
           action: str = "mask", second: Body | None = None,
           max_event_bytes: int | None = None) -> Any:
    pii: Body = {"detectors": ["email"], "action": action}
    if allow is not None:
        pii["allow_unread"] = allow
    if apply_to is not None:
        pii["apply_to"] = apply_to
    guards: Body = {"pii": pii}
    if second is not None:
        guards["dlp"] = second
    return loader.parse({
        "guards": guards,
        "routes": [{"name": name, "provider": provider, "guards": list(guards),
                    **({"streams": {"max_event_bytes": max_event_bytes}}
                       if max_event_bytes else {})}
                   for name, provider in PROVIDER.items()]
        + [{"name": "open", "provider": "openai"}]})


def _request(route: str, path: str, stream: bool) -> bytes:
    body = dict(ASK[route])
    if stream and route != "gemini":
        body["stream"] = True
    return json.dumps(body).encode()


async def _start(cfg: Any, route: str, path: str, ctype: str, stream: bool,
                 body: bytes | None = None) -> tuple[Exchange, list[Any]]:
    ex = Exchange(cfg.route(route), route, cfg.server.max_request_body_bytes)
    await send(ex, request_headers({":path": path}, req_mode=P.BUFFERED, resp_mode=P.STREAMED))
    out = await send(ex, request_body(body or _request(route, path, stream), True))
    if out and out[0].WhichOneof("response") == "immediate_response":
        return ex, out
    return ex, await send(ex, response_headers(200, **{"content-type": ctype}))


def _refused(replies: list[Any]) -> tuple[int, Body] | None:
    if len(replies) == 1 and replies[0].WhichOneof("response") == "immediate_response":
        reply = replies[0].immediate_response
        return reply.status.code, json.loads(reply.body)
    return None


async def _whole(cfg: Any, route: str, path: str, reply: Body
                 ) -> tuple[bytes, tuple[int, Body] | None, Exchange]:
    ex, _ = await _start(cfg, route, path, "application/json", False)
    raw = json.dumps(reply).encode()
    out = await send(ex, response_body(raw, True))
    refused = _refused(out)
    if refused is not None:
        return b"", refused, ex
    mutation = out[0].response_body.response.body_mutation
    return (mutation.body if mutation.WhichOneof("mutation") == "body" else raw), None, ex


def whole(cfg: Any, route: str, path: str, reply: Body
          ) -> tuple[bytes, tuple[int, Body] | None, Exchange]:
    return asyncio.run(_whole(cfg, route, path, reply))


async def _stream(cfg: Any, route: str, path: str, chunks: list[bytes]
                  ) -> tuple[bytes, Exchange]:
    return await _stream_as(cfg, route, path, "text/event-stream", chunks)


async def _stream_as(cfg: Any, route: str, path: str, ctype: str, chunks: list[bytes]
                     ) -> tuple[bytes, Exchange]:
    ex, _ = await _start(cfg, route, path, ctype, True)
    sent = b""
    for i, chunk in enumerate(chunks):
        for reply in await send(ex, response_body(chunk, i == len(chunks) - 1)):
            assert reply.WhichOneof("response") == "response_body", reply
            mutation = reply.response_body.response.body_mutation
            sent += mutation.body if mutation.WhichOneof("mutation") == "body" else chunk
    return sent, ex


def stream(cfg: Any, route: str, path: str, raw: bytes, cuts: list[int] | None = None
           ) -> tuple[bytes, Exchange]:
    points = sorted({c % (len(raw) + 1) for c in cuts or []} | {0, len(raw)})
    chunks = [raw[a:b] for a, b in itertools.pairwise(points)] + [b""]
    return asyncio.run(_stream(cfg, route, path, chunks))


def adapter(route: str, path: str) -> Any:
    return classify(PROVIDER[route], "POST", canonical_target(path)).adapter


# --- whole replies ---------------------------------------------------------------------

@pytest.mark.parametrize(("case", "route", "path", "reply", "kind"), WHOLE, ids=WHOLE_IDS)
def test_the_adapter_finds_the_media_of_a_whole_reply(case: str, route: str, path: str,
                                                       reply: Body, kind: str) -> None:
    assert adapter(route, path).reply_media(reply) == [kind]
    # and never hands its payload to the guards as text
    texts = [t for _, t in adapter(route, path).response_texts(reply)]
    assert not any(p in str(t) for t in texts for p in (PNG, WAV, PDF))


@pytest.mark.parametrize(("case", "route", "path", "reply", "kind"), WHOLE, ids=WHOLE_IDS)
def test_a_whole_reply_with_media_is_refused_by_default(case: str, route: str, path: str,
                                                         reply: Body, kind: str) -> None:
    _, refused, ex = whole(config(), route, path, reply)
    assert refused is not None, case
    status, doc = refused
    assert status == 400
    message = doc["error"]["message"]
    assert NAMES[kind] in message and "guard 'pii'" in message, message
    assert (doc.get("type") == "error") == (route == "anthropic")   # Anthropic's envelope
    assert not any(p in json.dumps(doc) for p in (PNG, WAV, PDF, EMAIL))
    assert ex.state["guard_response"] == f"pii:rejected:unread_{kind}"


@pytest.mark.parametrize(("case", "route", "path", "reply", "kind"), WHOLE, ids=WHOLE_IDS)
def test_an_allowed_kind_passes_untouched_and_the_texts_are_still_masked(
        case: str, route: str, path: str, reply: Body, kind: str) -> None:
    sent, refused, _ = whole(config(allow=[kind]), route, path, reply)
    assert refused is None
    out = json.loads(sent)
    if EMAIL in json.dumps(reply):   # the texts around the media are masked as ever
        assert EMAIL not in sent.decode() and "<EMAIL>" in sent.decode()
    # the media's bytes as they came: the mask guard never read its base64
    for payload in (PNG, WAV, PDF):
        assert json.dumps(out).count(payload) == json.dumps(reply).count(payload)
    others = [k for k in NAMES if k != kind]
    assert whole(config(allow=others), route, path, reply)[1] is not None


def test_a_gemini_array_stream_with_an_image_element_is_refused() -> None:
    """streamGenerateContent without alt=sse answers a JSON array: the gateway rewrites it
    to SSE, and the element with the image ends the stream refused."""
    reply = [{"candidates": [{"content": {"role": "model", "parts": [{"text": "Here"}]},
                              "index": 0}]},
             _gemini_reply({"inlineData": {"mimeType": "image/png", "data": PNG}})]
    assert adapter("gemini", GEMINI_ARRAY).reply_media(reply) == ["image"]
    raw = json.dumps(reply).encode()
    for allow, refused in (([], True), (["image"], False)):
        sent, ex = asyncio.run(_stream_as(config(allow=allow), "gemini", GEMINI_ARRAY,
                                          "application/json", [raw, b""]))
        assert (PNG.encode() in sent) is not refused
        assert (b'"SAFETY"' in sent and NAMES["image"].encode() in sent) is refused
        assert (ex.state.get("guard_response") == "pii:rejected:unread_image") is refused


def test_every_reply_guard_must_allow_the_kind_and_request_guards_take_no_part() -> None:
    case = WHOLE[3]    # a Gemini image
    cards = {"detectors": ["card"], "action": "reject"}
    _, refused, ex = whole(config(allow=["image"], second=cards), *case[1:4])
    assert refused is not None and "guard 'dlp'" in refused[1]["error"]["message"]
    assert ex.state["guard_response"] == "dlp:rejected:unread_image"
    allowed = {**cards, "allow_unread": ["image"]}
    assert whole(config(allow=["image"], second=allowed), *case[1:4])[1] is None
    # a guard that reads prompts only has no say on the reply; an unguarded route none
    assert whole(config(apply_to=["request"]), *case[1:4])[1] is None
    assert whole(config(), "open", CHAT, WHOLE[0][3])[1] is None


# --- streams -----------------------------------------------------------------------------

@pytest.mark.parametrize(("case", "route", "path", "raw", "kind"), STREAMS, ids=STREAM_IDS)
def test_a_stream_with_media_ends_refused_before_the_media(case: str, route: str, path: str,
                                                           raw: bytes, kind: str) -> None:
    sent, ex = stream(config(), route, path, raw)
    assert not any(p.encode() in sent for p in (PNG, WAV, PDF)), sent
    assert NAMES[kind].encode() in sent and b"cannot read" in sent
    assert ex.state["guard_response"] == f"pii:rejected:unread_{kind}"
    # the provider's own way to end a refused stream
    assert {"openai": b'"content_filter"', "responses": b"response.incomplete",
            "anthropic": b'"refusal"', "gemini": b'"SAFETY"'}[route] in sent


@pytest.mark.parametrize(("case", "route", "path", "raw", "kind"), STREAMS, ids=STREAM_IDS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=6))
def test_any_chunking_refuses_the_same_and_an_allowed_kind_passes_byte_for_byte(
        case: str, route: str, path: str, raw: bytes, kind: str, cuts: list[int]) -> None:
    whole_refusal, _ = stream(config(), route, path, raw)
    assert stream(config(), route, path, raw, cuts)[0] == whole_refusal
    # allowed, the stream goes out the same however cut, its media byte for byte (the
    # mask guard may hold text back across events, as it does in any stream)
    allowed, _ = stream(config(allow=[kind]), route, path, raw)
    assert stream(config(allow=[kind]), route, path, raw, cuts)[0] == allowed
    payload = {"image": PNG, "audio": WAV, "document": PDF}[kind].encode()
    assert allowed.count(payload) == raw.count(payload) > 0
    assert events(allowed) == events(raw)


def events(raw: bytes) -> list[Any]:
    """The JSON of a stream's events less the audio transcripts' pieces (the one text these
    streams spell in pieces, whose boundaries a mask guard may move: it holds text back and
    sends the rest in an event of its own): what a client makes of the rest."""
    out: list[Any] = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        data = [line[6:] for line in block.split(b"\n") if line.startswith(b"data: ")]
        if not data or data[0] == b"[DONE]":
            continue
        doc = json.loads(b"\n".join(data))
        audio = [c["delta"]["audio"] for c in doc.get("choices", [])
                 if isinstance(c.get("delta", {}).get("audio"), dict)]
        for a in audio:
            a.pop("transcript", None)
        if not (audio and all(a == {} or set(a) == {"id"} for a in audio)):
            out.append(doc)
    return out


def test_an_allowed_stream_still_masks_its_text() -> None:
    raw = _sse(_chunk({"role": "assistant", "content": None}),
               _chunk({"audio": {"id": "audio_1", "transcript": f"Mail {EMAIL} now."}}),
               _chunk({"audio": {"data": WAV}}), _chunk({}, "stop")) + b"data: [DONE]\n\n"
    sent, _ = stream(config(allow=["audio"]), "openai", CHAT, raw)
    assert EMAIL.encode() not in sent and b"<EMAIL>" in sent and WAV.encode() in sent


def test_a_webhook_reply_guard_refuses_media_it_does_not_allow() -> None:
    calls: list[Any] = []

    async def check(texts: list[Any]) -> Verdict:
        calls.append(texts)
        return Verdict("pass")

    decisions: list[tuple[str, str]] = []
    raw = STREAMS[0][3]

    async def run(allow: frozenset[str]) -> bytes:
        guard = WebhookStreamGuard("openai", "dlp", check, 200, False, 1 << 20,
                                   lambda g, o: decisions.append((g, o)),
                                   allow_unread=allow)
        return await guard.feed_async(raw) + await guard.finish_async()

    sent = asyncio.run(run(frozenset()))
    assert WAV.encode() not in sent and b"guard 'dlp'" in sent and b"audio" in sent
    # what came before it was checked first (and passed), then the stream was refused
    assert decisions == [("dlp", "pass"), ("dlp", "rejected")]
    assert [t.text for t in calls[0]] == ["Mail me."]
    calls.clear()
    assert asyncio.run(run(frozenset({"audio"}))) == raw


# --- requests for media --------------------------------------------------------------------

ASKED = [
    ("openai-modalities", "openai", CHAT, {"modalities": ["text", "audio"],
                                           "audio": {"voice": "alloy", "format": "wav"}},
     "audio"),
    ("openai-audio-param", "openai", CHAT, {"audio": {"voice": "alloy", "format": "wav"}},
     "audio"),
    ("openai-modality-spelled", "openai", CHAT, {"modalities": [" Audio"]}, "audio"),
    ("responses-image-tool", "responses", RESPONSES,
     {"tools": [{"type": "web_search"}, {"type": "image_generation", "partial_images": 1}]},
     "image"),
    # tools an input item gives, and a namespace's (the request audit)
    ("responses-image-tool-in-an-item", "responses", RESPONSES,
     {"input": [{"type": "message", "role": "user", "content": "draw a cat"},
                {"type": "additional_tools", "tools": [{"type": "image_generation"}]}]},
     "image"),
    ("responses-image-tool-in-an-update", "responses", RESPONSES,
     {"input": [{"type": "configuration_update", "tools": [{"type": "image_generation"}]},
                {"type": "message", "role": "user", "content": "draw a cat"}]}, "image"),
    ("responses-image-tool-in-a-namespace", "responses", RESPONSES,
     {"tools": [{"type": "namespace", "name": "n", "tools": [{"type": "image_generation"}]}]},
     "image"),
    ("gemini-image", "gemini", GEMINI, {"generationConfig": {"responseModalities":
                                                             ["TEXT", "IMAGE"]}}, "image"),
    ("gemini-audio-snake", "gemini", GEMINI, {"generation_config": {"response_modalities":
                                                                    ["audio"]}}, "audio"),
    ("gemini-speech", "gemini", GEMINI, {"generationConfig": {"speechConfig": {
        "voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}}}}}, "audio"),
    # the snake-case config beside a camelCase one that asks for nothing: Google may keep
    # either, so what either asks for counts
    ("gemini-image-both-spellings", "gemini", GEMINI, {
        "generationConfig": {"temperature": 1},
        "generation_config": {"response_modalities": ["IMAGE"]}}, "image"),
    # Google's proto3 JSON reads a lone value as a list of one, and an enum by its number
    # (IMAGE is 2; AUDIO 3 in v1beta, 4 in v1), given as a number or as a string
    ("gemini-image-lone", "gemini", GEMINI, {"generationConfig": {"responseModalities":
                                                                  "IMAGE"}}, "image"),
    ("gemini-image-number", "gemini", GEMINI, {"generationConfig": {"responseModalities":
                                                                    [1, 2]}}, "image"),
    ("gemini-audio-number-string", "gemini", GEMINI, {"generationConfig": {
        "responseModalities": "3"}}, "audio"),
    ("gemini-audio-v1-number", "gemini", GEMINI, {"generationConfig": {
        "responseModalities": [4]}}, "audio"),
]


def ask(cfg: Any, route: str, path: str, extra: Body) -> tuple[int, Body] | None:
    body = json.dumps({**ASK[route], **extra}).encode()
    _, out = asyncio.run(_start(cfg, route, path, "application/json", False, body))
    return _refused(out)


@pytest.mark.parametrize(("case", "route", "path", "extra", "kind"), ASKED,
                         ids=[c[0] for c in ASKED])
def test_a_request_for_media_is_refused_before_it_is_sent(case: str, route: str, path: str,
                                                          extra: Body, kind: str) -> None:
    assert adapter(route, path).asks_media({**ASK[route], **extra}) == [kind]
    refused = ask(config(), route, path, extra)
    assert refused is not None
    status, doc = refused
    assert status == 400
    message = doc["error"]["message"]
    assert "the reply would carry" in message and NAMES[kind] in message
    assert "guard 'pii'" in message
    # allowed, or no guard reads replies, or no guard at all: it goes on
    assert ask(config(allow=[kind]), route, path, extra) is None
    assert ask(config(apply_to=["request"]), route, path, extra) is None
    if route == "openai":
        assert ask(config(), "open", path, extra) is None


def test_a_text_request_asks_for_no_media() -> None:
    for route, path in (("openai", CHAT), ("responses", RESPONSES), ("anthropic", MESSAGES),
                        ("gemini", GEMINI)):
        assert adapter(route, path).asks_media(ASK[route]) == []
        assert ask(config(), route, path, {}) is None
    for text in (["TEXT"], "text", [1], "1", [0]):
        assert adapter("gemini", GEMINI).asks_media(
            {"generationConfig": {"responseModalities": text}}) == []
    assert adapter("openai", CHAT).asks_media({"modalities": ["text"]}) == []


# --- events larger than the route reads ----------------------------------------------------

BIG = base64.b64encode(bytes(range(256)) * 5000).decode()    # 1.7 MB of base64


def _big_image_stream() -> bytes:
    return _sse({"candidates": [{"content": {"role": "model", "parts": [{"text": "Here "}]},
                                 "index": 0}]},
                {"candidates": [{"content": {"role": "model", "parts": [
                    {"inlineData": {"mimeType": "image/png", "data": BIG}}]}, "index": 0,
                    "finishReason": "STOP"}]}, crlf=True)


@pytest.mark.parametrize("cuts", [[], [65536 * i for i in range(1, 30)]], ids=["whole", "64k"])
def test_an_event_larger_than_the_route_reads_ends_the_stream_cleanly(cuts: list[int]) -> None:
    """An event past the route's streams.max_event_bytes (1 MiB by default) cannot be read
    by the guards: the stream ends the provider's way with an error event that says so (not
    an internal error), and nothing of the event is sent. A route that raises the limit
    reads it: a large generated image passes once images are allowed."""
    raw = _big_image_stream()
    sent, ex = stream(config(allow=["image"]), "gemini", GEMINI_SSE, raw, cuts)
    assert BIG[:64].encode() not in sent
    assert b'"Here "' in sent      # the event before it goes on (it was lost with it)
    assert b'"SAFETY"' in sent and b"larger than the route's streams.max_event_bytes" in sent
    assert ex.state["guard_response"] == "guard:rejected:an_oversized_event"
    sent, _ = stream(config(allow=["image"], max_event_bytes=4 << 20), "gemini", GEMINI_SSE,
                     raw, cuts)
    assert sent.count(BIG.encode()) == 1
    sent, _ = stream(config(max_event_bytes=4 << 20), "gemini", GEMINI_SSE, raw, cuts)
    assert BIG[:64].encode() not in sent and NAMES["image"].encode() in sent


@pytest.mark.parametrize("cuts", [[], [65536 * i for i in range(1, 30)]], ids=["whole", "64k"])
def test_an_array_element_larger_than_the_route_reads_ends_the_rewritten_stream_cleanly(
        cuts: list[int]) -> None:
    """The same image as one element of a Gemini JSON-array stream (no alt=sse), which the
    gateway rewrites to SSE, and which passes that rewrite in pieces when it is too large to
    hold: the guards still cannot read it, so the stream ends refused, nothing of the element
    is sent, and the element before it goes on."""
    first, second = (json.loads(line[6:]) for line in _big_image_stream().decode().split(
        "\r\n") if line.startswith("data: "))
    raw = ("[" + json.dumps(first, indent=2) + "\n,\r\n" + json.dumps(second, indent=2)
           + "\n]").encode()
    points = sorted({c % (len(raw) + 1) for c in cuts} | {0, len(raw)})
    chunks = [raw[a:b] for a, b in itertools.pairwise(points)] + [b""]
    sent, ex = asyncio.run(_stream_as(config(allow=["image"]), "gemini", GEMINI_ARRAY,
                                      "application/json", chunks))
    assert BIG[:64].encode() not in sent
    assert b'"Here "' in sent
    assert b'"SAFETY"' in sent and b"larger than the route's streams.max_event_bytes" in sent
    assert ex.state["guard_response"] == "guard:rejected:an_oversized_event"


def test_a_webhook_reply_guard_ends_a_stream_with_an_oversized_event_cleanly() -> None:
    async def check(texts: list[Any]) -> Verdict:
        return Verdict("pass")

    decisions: list[tuple[str, str]] = []

    async def run(raw: bytes) -> bytes:
        guard = WebhookStreamGuard("gemini", "dlp", check, 200, False, 1 << 20,
                                   lambda g, o: decisions.append((g, o)),
                                   allow_unread=frozenset({"image"}))
        out = b""
        for i in range(0, len(raw), 65536):
            out += await guard.feed_async(raw[i:i + 65536])
        return out + await guard.finish_async()

    sent = asyncio.run(run(_big_image_stream()))
    assert b"Here " in sent and BIG[:64].encode() not in sent     # what came first went on
    assert b"larger than the route's streams.max_event_bytes" in sent
    assert decisions[-1] == ("dlp", "rejected")
