"""The LLM response transforms, sans-IO: any chunking gives the same client bytes, the
rewrite read back by an SSE parser gives exactly the upstream's array elements, usage and
finish reasons are reported once at the end, a cut stream ends with an error event."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.codecs.sse import SSEDecoder
from extproc.llm.json_array import JsonArrayObserver, JsonArrayToSSE
from extproc.llm.transforms import (
    JsonBodyObserver,
    SSEObserver,
    SSEReframer,
    StreamReport,
)
from extproc.mock import google, openai
from extproc.mock.common import Reply
from extproc.providers import adapter_for
from extproc.providers.base import Usage


def reply(text: str) -> Reply:
    return Reply.make(text, model="m", response_id="r1", created=1_800_000_000,
                      prompt_tokens=7)


def run(transform, chunks: list[bytes]) -> bytes:
    return b"".join(transform.feed(c) for c in chunks) + transform.finish()


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


class Meter:
    def __init__(self) -> None:
        self.reports: list[StreamReport] = []

    def __call__(self, report: StreamReport) -> None:
        self.reports.append(report)


TEXTS = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1,
                max_size=80)
CUTS = st.lists(st.integers(min_value=0, max_value=10_000), max_size=30)
REQUEST = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


@settings(max_examples=150, deadline=None)
@given(text=TEXTS, cuts=CUTS, vertex=st.booleans())
def test_rewrite_read_by_an_sse_parser_gives_the_array_elements(text: str, cuts: list[int],
                                                                vertex: bool) -> None:
    r = reply(text)
    array = b"".join(google.build_stream(REQUEST, r, sse=False, vertex=vertex))
    sse = b"".join(google.build_stream(REQUEST, r, sse=True, vertex=vertex))
    meter = Meter()
    out = run(JsonArrayToSSE(adapter_for("gemini"), meter, 1 << 20), split(array, cuts))
    assert out == sse                                  # what Gemini's alt=sse sends
    decoder = SSEDecoder()
    events = decoder.feed(out) + decoder.finish()
    assert [json.loads(e.data) for e in events] == json.loads(array)
    (report,) = meter.reports
    last = json.loads(array)[-1]["usageMetadata"]
    assert report.usage.output_tokens == last["candidatesTokenCount"]
    assert report.usage.input_tokens == last["promptTokenCount"]
    assert report.finish_reason == "STOP" and report.error is None


@given(cut=st.integers(min_value=1, max_value=400))
def test_a_cut_array_ends_with_a_google_error_event(cut: int) -> None:
    array = b"".join(google.build_stream(REQUEST, reply("a b c d e f g"), sse=False))
    cut = min(cut, len(array) - 1)
    out = run(JsonArrayToSSE(adapter_for("gemini"), Meter(), 1 << 20), [array[:cut]])
    events = SSEDecoder().feed(out)
    error = json.loads(events[-1].data)["error"]
    assert error["code"] == 502 and error["status"] == "UNAVAILABLE"
    assert "ended before the JSON array was complete" in error["message"]
    assert len(events) - 1 == array[:cut].count(b"\n}")   # every complete element came first


def test_garbage_instead_of_an_array_is_one_error_event_then_nothing() -> None:
    t = JsonArrayToSSE(adapter_for("vertex"), Meter(), 1 << 20)
    first = t.feed(b"<html>oops</html>")
    assert json.loads(SSEDecoder().feed(first)[0].data)["error"]["code"] == 502
    assert t.feed(b"more") == b"" and t.finish() == b""


CHAT = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


@settings(max_examples=150, deadline=None)
@given(text=TEXTS, cuts=CUTS)
def test_openai_reframer_hides_the_usage_it_asked_for(text: str, cuts: list[int]) -> None:
    r = reply(text)
    frames = openai.build_stream({**CHAT, "stream_options": {"include_usage": True}}, r)
    asked = b"".join(frames)
    # every event as upstream sent it, but the usage-only chunk the gateway asked for
    expected = b"".join(f for f in frames if b'"choices":[]' not in f)
    assert len(frames) - 1 == len(openai.build_stream(CHAT, r))
    meter = Meter()
    out = run(SSEReframer(adapter_for("openai"), meter, 1 << 20), split(asked, cuts))
    assert out == expected
    (report,) = meter.reports
    assert report.usage.output_tokens == len(r.pieces)
    assert report.usage.input_tokens == 7
    assert report.finish_reason == "stop"


@settings(max_examples=100, deadline=None)
@given(text=TEXTS, cuts=CUTS)
def test_observers_pass_every_byte_through_unchanged(text: str, cuts: list[int]) -> None:
    r = reply(text)
    for transform, body in [
        (SSEObserver(adapter_for("gemini"), Meter(), True, 1 << 20),
         b"".join(google.build_stream(REQUEST, r, sse=True))),
        (JsonArrayObserver(adapter_for("gemini"), Meter(), 1 << 20),
         b"".join(google.build_stream(REQUEST, r, sse=False))),
        (JsonBodyObserver(adapter_for("gemini"), Meter()), google.build_response(REQUEST, r)),
    ]:
        chunks = split(body, cuts)
        assert [transform.feed(c) for c in chunks] == chunks
        assert transform.finish() == b""
        (report,) = transform.meter.reports
        assert report.usage.output_tokens == len(r.pieces)


def test_anthropic_mid_stream_error_is_reported() -> None:
    stream = (b'event: message_start\ndata: {"type":"message_start","message":{"usage":'
              b'{"input_tokens":12,"output_tokens":1}}}\n\n'
              b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
              b'"message":"Overloaded"}}\n\n')
    meter = Meter()
    t = SSEObserver(adapter_for("anthropic"), meter, False, 1 << 20)
    assert run(t, [stream]) == stream
    (report,) = meter.reports
    assert report.error == "Overloaded" and report.usage.input_tokens == 12


def test_reframer_passes_whole_event_chunks_as_the_same_object() -> None:
    frames = openai.build_stream({**CHAT, "stream_options": {"include_usage": True}},
                                 reply("one two three"))
    t = SSEReframer(adapter_for("openai"), Meter(), 1 << 20)
    assert t.feed(frames[0]) is frames[0]               # untouched: the servicer CONTINUEs
    assert t.feed(frames[1][:10]) == b""                # half an event is held
    assert t.feed(frames[1][10:] + frames[2]) == frames[1] + frames[2]
    assert t.feed(frames[3]) is frames[3]               # aligned again


async def test_a_closed_exchange_is_freed_without_waiting_for_the_gc() -> None:
    """Per-request state must go when the stream ends, not at the next GC cycle."""
    import gc
    import weakref

    from envoy.config.core.v3.base_pb2 import HeaderMap, HeaderValue
    from envoy.service.ext_proc.v3 import external_processor_pb2 as pb

    from extproc import loader
    from extproc.exchange import Exchange
    from extproc.protocol import BUFFERED, STREAMED

    def headers(**kv: str) -> HeaderMap:
        return HeaderMap(headers=[HeaderValue(key=k.replace("_", ":", 1) if k.startswith("_")
                                              else k, raw_value=v.encode())
                                  for k, v in kv.items()])

    route = loader.parse({"routes": [{"name": "r", "provider": "openai"}]}).routes["r"]
    messages = [
        pb.ProcessingRequest(request_headers=pb.HttpHeaders(headers=headers(
            _path="/v1/chat/completions", _method="POST")),
            protocol_config=pb.ProtocolConfiguration(
                request_body_mode=BUFFERED, response_body_mode=STREAMED)),
        pb.ProcessingRequest(request_body=pb.HttpBody(body=json.dumps(CHAT).encode(),
                                                      end_of_stream=True)),
        pb.ProcessingRequest(response_headers=pb.HttpHeaders(headers=headers(
            _status="200", **{"content-type": "text/event-stream"}))),
        pb.ProcessingRequest(response_body=pb.HttpBody(body=b'data: {"choices":[{"de')),
    ]
    gc.disable()
    try:
        ex = Exchange(route, "r")
        for m in messages:
            await ex.handle(m)
        assert ex._transforms                    # mid-stream, a reframer holds a partial event
        ex.close()                               # the client went away
        ref = weakref.ref(ex)
        del ex
        assert ref() is None
    finally:
        gc.enable()


@settings(max_examples=100, deadline=None)
@given(text=TEXTS, cuts=CUTS, reframe=st.booleans())
def test_an_openai_stream_is_metered_at_done_once(text: str, cuts: list[int],
                                                  reframe: bool) -> None:
    """The report reaches the meter with the chunk that completes `data: [DONE]` (so its
    metadata rides on that chunk's reply, before the client has [DONE]), and only once."""
    r = reply(text)
    body = b"".join(openai.build_stream({**CHAT, "stream_options": {"include_usage": True}},
                                        r))
    meter = Meter()
    transform = SSEReframer(adapter_for("openai"), meter, 1 << 20) if reframe \
        else SSEObserver(adapter_for("openai"), meter, False, 1 << 20)
    done_at = body.index(b"data: [DONE]") + len(b"data: [DONE]\n\n")
    fed = 0
    for chunk in split(body, cuts):
        transform.feed(chunk)
        fed += len(chunk)
        assert len(meter.reports) == (1 if fed >= done_at else 0)
    transform.finish()
    (report,) = meter.reports
    assert report.usage.output_tokens == len(r.pieces) and report.finish_reason == "stop"


def _oversized_openai_stream(text: str) -> tuple[list[bytes], bytes]:
    """An OpenAI stream (with the usage chunk the gateway asks for) whose second event is
    over 2 KiB: the frames as sent, and one big event."""
    frames = openai.build_stream({**CHAT, "stream_options": {"include_usage": True}},
                                 reply(text))
    big = b'data: {"choices":[{"index":0,"delta":{"content":"' + b"x" * 4096 + b'"}}]}\n\n'
    return [frames[0], big, *frames[1:]], big


@settings(max_examples=200, deadline=None)
@given(text=TEXTS, cuts=CUTS, inside=st.integers(min_value=1, max_value=4200))
def test_an_oversized_event_goes_by_unread_and_the_stream_is_read_on(
        text: str, cuts: list[int], inside: int) -> None:
    """An event past max_event_bytes raised, and Envoy reset the stream. It now goes by
    unread and never held whole, and the events after it are read as before: the reframer
    still drops the usage chunk it asked for and reads the usage exactly, under any
    chunking, with a cut anywhere inside the big event."""
    frames, big = _oversized_openai_stream(text)
    body = b"".join(frames)
    asked = b"".join(f for f in frames if b'"choices":[]' not in f)
    at = body.index(big) + inside
    chunks = [*split(body[:at], cuts), *split(body[at:], cuts)]
    meter = Meter()
    assert run(SSEReframer(adapter_for("openai"), meter, 2048), chunks) == asked
    (report,) = meter.reports
    assert report.unread is None
    assert (report.usage.input_tokens, report.usage.output_tokens) == (7, len(reply(text).pieces))
    meter = Meter()
    t = SSEObserver(adapter_for("openai"), meter, False, 2048)
    assert [t.feed(c) for c in chunks] == chunks
    t.finish()
    (report,) = meter.reports
    assert report.unread is None and report.usage.input_tokens == 7


def _gemini_sse(text: str, image: bytes) -> list[bytes]:
    """A Gemini SSE stream whose finishing event carries `image` (inline data) and, after
    it, the final usageMetadata, as Gemini writes an image it generated."""
    frames = google.build_stream(REQUEST, reply(text), sse=True)
    last = json.loads(frames[-1][len(b"data: "):])
    last["candidates"][0]["content"]["parts"].append(
        {"inlineData": {"mimeType": "image/png", "data": image.decode()}})
    last["usageMetadata"]["candidatesTokenCount"] += 1290
    last["usageMetadata"]["totalTokenCount"] += 1290
    return [*frames[:-1], b"data: " + google.dump_sse_json(last).encode() + b"\r\n\r\n"]


@settings(max_examples=100, deadline=None)
@given(text=TEXTS, cuts=CUTS)
def test_a_gemini_event_too_large_to_read_still_reports_its_usage(text: str,
                                                                    cuts: list[int]) -> None:
    """The usage Gemini writes after the candidates in the event with the image is read
    from the event's last bytes: the token count is exact, not the worst case."""
    frames = _gemini_sse(text, b"A" * 8000)
    chunks = split(b"".join(frames), cuts)
    for limit in (2048, 1 << 20):
        meter = Meter()
        run(SSEObserver(adapter_for("gemini"), meter, True, limit), chunks)
        (report,) = meter.reports
        assert report.unread is None
        assert report.usage.output_tokens == len(reply(text).pieces) + 1290


def _report(stream: list[bytes], limit: int, cut: int) -> StreamReport:
    body = b"".join(stream)
    meter = Meter()
    run(SSEObserver(adapter_for("gemini"), meter, True, limit), [body[:cut], body[cut:]])
    (report,) = meter.reports
    return report


def test_an_event_too_large_reads_as_it_would_whole_unless_it_is_not_json() -> None:
    frames = _gemini_sse("hi there", b"A" * 8000)
    at = len(b"".join(frames[:-1])) + 3000    # the big event arrives in two pieces
    # with its usage, and without any: read as the same event held whole is read
    last = json.loads(frames[-1][len(b"data: "):])
    del last["usageMetadata"]
    without = b"data: " + google.dump_sse_json(last).encode() + b"\r\n\r\n"
    for stream in (frames, [*frames[:-1], without]):
        past, whole = _report(stream, 2048, at), _report(stream, 1 << 20, at)
        assert past.unread is None and whole.unread is None
        assert (past.usage, past.finish_reason) == (whole.usage, whole.finish_reason)
    assert _report(frames, 2048, at).usage.output_tokens \
        > _report([*frames[:-1], without], 2048, at).usage.output_tokens
    # not JSON (a quote lost in the image data), or the stream ends inside it: what it said
    # is not known, and with no report after it the usage is unread
    damaged = frames[-1].replace(b'"data": "', b'"data": ')
    for stream in ([*frames[:-1], damaged], [*frames[:-1], frames[-1][:5000]]):
        report = _report(stream, 2048, at)
        assert report.unread is not None and "max_event_bytes" in report.unread
        assert report.unread_kind == "oversized_event"


@settings(max_examples=100, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=30),
       vertex=st.booleans())
def test_an_array_element_too_large_to_hold_is_rewritten_and_read_in_pieces(
        cuts: list[int], vertex: bool) -> None:
    """An element past the bound (an inline image, say) is never held whole: the rewrite
    sends it on piece by piece as the one event Gemini's alt=sse sends, and its usage is read
    from its last bytes, under any chunking."""
    r = reply("hello " + "y" * 3000 + " there " + "z" * 2500)
    array = b"".join(google.build_stream(REQUEST, r, sse=False, vertex=vertex))
    sse = b"".join(google.build_stream(REQUEST, r, sse=True, vertex=vertex))
    last = json.loads(array)[-1]["usageMetadata"]
    for t in (JsonArrayToSSE(adapter_for("gemini"), Meter(), 2048),
              JsonArrayObserver(adapter_for("gemini"), Meter(), 2048)):
        chunks = split(array, cuts)
        out = [t.feed(c) for c in chunks]
        assert t.splitter._buf.__len__() <= 2048 + max(map(len, chunks))
        out.append(t.finish())
        assert b"".join(out) == (sse if isinstance(t, JsonArrayToSSE) else array)
        (report,) = t.meter.reports
        assert report.unread is None and report.error is None
        assert report.usage.output_tokens == last["candidatesTokenCount"]
        assert report.usage.input_tokens == last["promptTokenCount"]


def test_an_array_element_too_large_that_is_not_json_leaves_the_usage_unread() -> None:
    big = b'[{"candidates":[{"content":{"parts":[{"text":"' + b"y" * 4096 + b'"}]}}]}]'
    bad = big.replace(b'"text":"', b'"text":"\t')    # a raw tab in a string: not JSON
    for t in (JsonArrayObserver(adapter_for("gemini"), Meter(), 2048),
              JsonArrayToSSE(adapter_for("gemini"), Meter(), 2048)):
        run(t, [bad[:2500], bad[2500:]])   # held past the bound before it ends: it went
        (report,) = t.meter.reports         # out, and not JSON, it breaks the stream there
        assert report.unread is not None and "not valid JSON" in report.unread
        assert report.unread_kind == "broken_stream"
    for t in (JsonArrayObserver(adapter_for("gemini"), Meter(), 2048),
              JsonArrayToSSE(adapter_for("gemini"), Meter(), 2048)):
        run(t, [big[:2500], big[2500:]])   # JSON with no usage in it: read, as held whole
        assert t.meter.reports[0].unread is None
    t = JsonArrayObserver(adapter_for("gemini"), Meter(), 2048)
    run(t, [b'[{"candidates": []}', b', }'])     # an array that breaks: what followed
    assert t.meter.reports[0].unread_kind == "broken_stream"     # the break went unread
    t = JsonArrayObserver(adapter_for("gemini"), Meter(), 2048)
    run(t, [bad])                       # whole within one chunk: checked whole, and, not
    assert t.meter.reports[0].unread_kind == "broken_stream"   # JSON, it breaks the stream
    r = reply("hello there")
    body = b"".join(google.build_stream(REQUEST, r, sse=False))
    t = JsonArrayObserver(adapter_for("gemini"), Meter(), 2048)
    run(t, [body[:5], body[5:]])        # cut before `]`: the upstream broke, usage was read
    assert t.meter.reports[0].unread is None


def test_a_whole_reply_that_is_not_json_leaves_the_usage_unread() -> None:
    good = google.build_response(REQUEST, reply("hi"))
    for body, unread in [(good, False), (b"<html>oops</html>", True), (good[:-3], True)]:
        t = JsonBodyObserver(adapter_for("gemini"), Meter())
        run(t, [body])
        assert (t.meter.reports[0].unread is not None) is unread
        assert t.meter.reports[0].unread_kind == ("not_json" if unread else None)


def test_a_whole_reply_without_its_usage_report_leaves_the_usage_unread() -> None:
    """Every endpoint that generates reports its usage in a whole reply: one without it (cut
    down on the way, or from an upstream that is not the provider) is charged its worst
    case, never just the prompt. Embeddings and token counts generate nothing: theirs may
    go without."""
    from extproc.mock import anthropic, openai_responses
    from extproc.providers.anthropic_extra import AnthropicCountTokensAdapter
    from extproc.providers.google_extra import GoogleEmbedAdapter
    from extproc.providers.openai_responses import OpenAIResponsesAdapter

    def without(body: bytes) -> bytes:
        doc = json.loads(body)
        assert doc.pop("usage", None) or doc.pop("usageMetadata", None)
        return json.dumps(doc).encode()

    generating = [
        (adapter_for("openai"), openai.build_response({}, reply("hi"))),
        (adapter_for("anthropic"), anthropic.build_response({}, reply("hi"))),
        (adapter_for("gemini"), google.build_response(REQUEST, reply("hi"))),
        (OpenAIResponsesAdapter("openai"), openai_responses.build_response({}, reply("hi"))),
    ]
    for adapter, body in generating:
        for sent, unread in ((body, None), (without(body), "no_usage")):
            t = JsonBodyObserver(adapter, Meter())
            run(t, [sent])
            assert t.meter.reports[0].unread_kind == unread, adapter
    for adapter in (GoogleEmbedAdapter("gemini"), AnthropicCountTokensAdapter("anthropic")):
        t = JsonBodyObserver(adapter, Meter())
        run(t, [b'{"embedding": {"values": [0.5]}}'])
        assert t.meter.reports[0].unread is None


def test_the_usage_of_an_event_too_large_is_the_one_at_its_path_never_text() -> None:
    """What a model writes cannot pose as the usage: not inside a string, not deeper than
    the usage's place (a function call's arguments naming a key "usageMetadata"), even
    when the real one is missing."""
    decoy = {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2}
    event = {"candidates": [{"content": {"parts": [
        {"text": 'x "usageMetadata": ' + json.dumps(decoy)},
        {"functionCall": {"name": "f", "args": {"usageMetadata": decoy}}},
        {"inlineData": {"mimeType": "image/png", "data": "A" * 8000}}]},
        "finishReason": "STOP", "index": 0}]}
    frame = b"data: " + json.dumps(event).encode() + b"\r\n\r\n"
    for limit in (2048, 1 << 20):   # past the limit, and held whole
        report = _report([frame], limit, 3000)
        assert report.usage == Usage() and report.unread is None
    real = {"promptTokenCount": 3, "candidatesTokenCount": 1290, "totalTokenCount": 1293}
    frame = b"data: " + json.dumps({**event, "usageMetadata": real}).encode() + b"\r\n\r\n"
    report = _report([frame], 2048, 3000)
    assert (report.usage.input_tokens, report.usage.output_tokens) == (3, 1290)


def test_an_array_broken_inside_an_element_in_pieces_ends_with_an_error_event() -> None:
    """The event already under way is ended where it broke, and the error follows it as an
    event of its own; the elements before it went out whole."""
    r = reply("hello there friend")
    body = b"".join(google.build_stream(REQUEST, r, sse=False))
    at = body.index(b"\n,") + 1       # after the first element
    big = body[:at] + b'\n,{"candidates":[{"content":{"parts":[{"text":"' + b"y" * 4096
    t = JsonArrayToSSE(adapter_for("gemini"), Meter(), 2048)
    out = run(t, [big[:at + 100], big[at + 100:]])
    events = SSEDecoder().feed(out)
    assert json.loads(events[0].data)["candidates"][0]["content"]["parts"][0]["text"] \
        == r.pieces[0]
    assert events[1].data.startswith('{"candidates":[{"content":{"parts":[{"text":"yyy')
    assert json.loads(events[2].data)["error"]["status"] == "UNAVAILABLE"
    assert len(events) == 3


@settings(max_examples=50, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=6))
def test_a_gemini_report_read_at_once_is_not_overwritten_by_an_older_one(
        cuts: list[int]) -> None:
    """Gemini reports cumulative usage in every element, and only the last report counts.
    An element holding `"error"` anywhere (a function call's argument of that name) is read
    at once; the plain report stored before it must not then win over it at the end."""
    def element(parts: list[dict[str, Any]], out: int, finish: str | None = None) -> Any:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        return {"candidates": [candidate], "modelVersion": "gemini-2.5-flash",
                "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": out,
                                  "totalTokenCount": 10 + out}}

    elements = [element([{"text": "Calling the tool."}], 3),
                element([{"functionCall": {"name": "report", "args": {"error": "x " * 500}}}],
                        503, "STOP")]
    sse = b"".join(b"data: " + json.dumps(e, separators=(",", ": ")).encode() + b"\r\n\r\n"
                   for e in elements)
    array = ("[" + "\n,\r\n".join(json.dumps(e, indent=2) for e in elements) + "\n]").encode()
    for t, body in ((SSEObserver(adapter_for("gemini"), Meter(), True, 1 << 20), sse),
                    (JsonArrayToSSE(adapter_for("gemini"), Meter(), 1 << 20), array),
                    (JsonArrayObserver(adapter_for("gemini"), Meter(), 1 << 20), array)):
        run(t, split(body, cuts))
        (report,) = t.meter.reports
        assert (report.usage.output_tokens, report.usage.total_tokens) == (503, 513)
        assert report.finish_reason == "STOP"


@settings(max_examples=100, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=5))
def test_the_usage_chunk_is_dropped_whatever_the_chunking_before_an_event_too_large(
        cuts: list[int]) -> None:
    """A chunk that ends with the start of an event too large to hold: the events before it
    are forwarded as decided (the usage-only chunk the gateway asked for stays dropped),
    under any chunking."""
    usage = (b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":7,'
             b'"completion_tokens":2,"total_tokens":9}}\n\n')
    first = (b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"hi"},'
             b'"finish_reason":"stop"}],"usage":null}\n\n')
    big = (b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"' + b"x" * 3000
           + b'"},"finish_reason":null}],"usage":null}\n\n')
    body = first + usage + big + b"data: [DONE]\n\n"
    for chunks in ([body[:len(first + usage) + 1500], body[len(first + usage) + 1500:]],
                   split(body, cuts)):
        meter = Meter()
        out = run(SSEReframer(adapter_for("openai"), meter, 1024), chunks)
        assert out == first + big + b"data: [DONE]\n\n"
        assert meter.reports[0].usage.output_tokens == 2


_USAGE_ELEMENT = (b'{"candidates":[{"content":{"parts":[{"text":"hi"}]},"finishReason":"STOP"}],'
                  b'"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":3,'
                  b'"totalTokenCount":8}}')
_FIRST = b'{"candidates":[{"content":{"parts":[{"text":"a"}]}}]}'
#: array elements that are not a JSON object: not sent on, the stream ends at them
_NOT_OBJECTS = [b"1", b'"abc"', b"[1,2]", b"null", b"tru", b"@@@", b'{"a": 1 2 3}', b'{"a"}',
                b"[" * 5000 + b"]" * 5000, b'{"a":' * 5000 + b"1" + b"}" * 5000,
                b'{"candidates":[{"content":{"parts":[{"text":"a\nb"}]}}]}',   # raw newline
                b'{"candidates":[{"content":{"parts":[{"text":"a\tb"}]}}]}',   # raw tab
                b'{"candidates":[{"content":{"parts":[{"text":"a\xffb"}]}}]}']  # not UTF-8


@settings(max_examples=60, deadline=None)
@given(bad=st.sampled_from(_NOT_OBJECTS), cuts=CUTS)
def test_an_array_element_that_is_not_a_json_object_ends_the_stream(bad: bytes,
                                                                    cuts: list[int]) -> None:
    """Default deny: an element the gateway cannot read as a JSON object (a scalar, invalid
    JSON, a raw control character in a string, nesting too deep) is never sent on, nor
    altered: the elements before it went out, the stream ends there with Google's error
    event, and its usage is unread (budgets charge at least their reservation), under any
    chunking."""
    array = b"[" + _FIRST + b",\r\n" + bad + b",\r\n" + _USAGE_ELEMENT + b"]"
    t = JsonArrayToSSE(adapter_for("gemini"), Meter(), 1 << 20)
    out = run(t, split(array, cuts))
    events = SSEDecoder().feed(out)
    assert [json.loads(e.data) for e in events[:-1]] == [json.loads(_FIRST)]
    error = json.loads(events[-1].data)["error"]
    assert (error["code"], error["status"]) == (502, "UNAVAILABLE")
    assert "array element 2 is not a JSON object" in error["message"]
    (report,) = t.meter.reports
    assert report.unread_kind == "broken_stream" and report.unread is not None
    assert not report.final
    observer = JsonArrayObserver(adapter_for("gemini"), Meter(), 1 << 20)
    chunks = split(array, cuts)
    assert [observer.feed(c) for c in chunks] == chunks and observer.finish() == b""
    assert observer.meter.reports[0].unread_kind == "broken_stream"


def test_an_invalid_last_usage_report_keeps_the_earlier_one_and_is_unread() -> None:
    """With cumulative usage (Gemini) only the last report is parsed, at the end: one that
    is not JSON leaves the usage unread, and does not wipe the valid report before it."""
    def element(n: int, extra: bytes = b"") -> bytes:
        return (b'{"candidates":[{"content":{"parts":[{"text":"' + b"w " * 20 + b'"}]}}],'
                b'"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":'
                + str(n).encode() + b"}" + extra + b"}")

    valid = [element(20), element(40)]
    broken = [*valid, element(60, b' "oops"')]
    # a JSON-array stream: the broken element is refused, the usage before it kept
    t = JsonArrayToSSE(adapter_for("gemini"), Meter(), 1 << 20)
    out = run(t, [b"[" + b",".join(broken) + b"]"])
    (report,) = t.meter.reports
    assert (report.usage.input_tokens, report.usage.output_tokens) == (5, 40)
    assert report.unread_kind == "broken_stream"
    assert out.count(b"data: ") == 3 and b"upstream stream broken" in out
    # an SSE stream (alt=sse) passes its events on as they are; its usage is read the same
    for events, unread in ((valid, None), (broken, "broken_stream")):
        sse = SSEObserver(adapter_for("gemini"), Meter(), True, 1 << 20)
        run(sse, [b"".join(b"data: " + e + b"\r\n\r\n" for e in events)])
        (report,) = sse.meter.reports
        assert (report.usage.input_tokens, report.usage.output_tokens) == (5, 40)
        assert report.unread_kind == unread
    # a report that is not JSON, then a valid one: the usage is read
    sse = SSEObserver(adapter_for("gemini"), Meter(), True, 1 << 20)
    run(sse, [b"".join(b"data: " + e + b"\r\n\r\n" for e in [broken[2], valid[1]])])
    (report,) = sse.meter.reports
    assert report.usage.output_tokens == 40 and report.unread is None


def test_a_broken_report_of_a_provider_whose_reports_do_not_repeat_stays_unread() -> None:
    """Anthropic's message_start alone carries the prompt's count: one that is not JSON
    leaves the usage unread though message_delta's output count reads (found by review: it
    was charged the 12 output tokens alone)."""
    def ev(name: str, data: str) -> bytes:
        return f"event: {name}\ndata: {data}\n\n".encode()
    start = json.dumps({"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "content": [],
        "model": "claude-x", "usage": {"input_tokens": 50000, "output_tokens": 1}}})
    rest = (ev("message_delta", json.dumps({"type": "message_delta",
                                            "delta": {"stop_reason": "end_turn"},
                                            "usage": {"output_tokens": 12}}))
            + ev("message_stop", '{"type": "message_stop"}'))
    for data, unread in ((start, None), (start.replace('"content"', '"x" "content"'),
                                         "broken_stream")):
        observer = SSEObserver(adapter_for("anthropic"), Meter(), False, 1 << 20)
        run(observer, [ev("message_start", data) + rest])
        (report,) = observer.meter.reports
        assert report.unread_kind == unread


@pytest.mark.parametrize(("element", "broken"), [
    (b'{"a": NaN}', True), (b'{"a": Infinity}', True),
    (b'{"a": ' + b"9" * 5000 + b"}", False), (b'{"a": 1e999}', False)])
def test_an_element_is_read_as_json_has_it(element: bytes, broken: bool) -> None:
    """No NaN or Infinity (not JSON), and numbers of any length (JSON has no limit; Python's
    int refuses 4,300 digits): found by review."""
    t = JsonArrayToSSE(adapter_for("gemini"), Meter(), 1 << 20)
    out = run(t, [b"[" + element + b"]"])
    assert (b"upstream stream broken" in out) is broken
    assert (t.meter.reports[0].unread_kind == "broken_stream") is broken


def test_an_array_cut_before_its_end_leaves_the_usage_unread() -> None:
    """A stream cut before its `]` may hide output the provider billed (found by review: it
    was charged the last report's count, unlike one with trailing bytes after its end)."""
    element = (b'{"candidates":[{"content":{"parts":[{"text":"hi"}]}}],'
               b'"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":2}}')
    t = JsonArrayToSSE(adapter_for("gemini"), Meter(), 1 << 20)
    out = run(t, [b"[" + element + b","])
    assert b"upstream stream broken" in out
    assert t.meter.reports[0].unread_kind == "broken_stream"


_HEAD = (b'{"candidates":[{"content":{"parts":[{"text":"hi"}]}}],'
         b'"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":3}}')
LARGE = {   # elements larger than the 200 bytes held whole
    "object": b'{"candidates":[{"content":{"parts":[{"text":"' + b"x" * 400 + b'"}]}}]}',
    "raw newline": b'{"candidates":[{"content":{"parts":[{"text":"' + b"x\n" * 200 + b'"}]}}]}',
    "not UTF-8": b'{"candidates":[{"content":{"parts":[{"text":"' + b"\xff" * 300 + b'"}]}}]}',
    "array": b"[" + b"1," * 200 + b"1]",
    "NaN": b'{"a":[' + b"NaN," * 100 + b"1]}",
}


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(sorted(LARGE)), cuts=st.lists(st.integers(0, 2000), max_size=8))
def test_a_large_element_is_read_the_same_under_any_split(kind: str, cuts: list[int]) -> None:
    """An element larger than what is held whole goes out as it comes, and one that turns
    out not to be a JSON object ends the stream after it, however the stream is split
    (found by review: in one chunk it was refused, in two sent on unchecked)."""
    stream = b"[" + _HEAD + b"," + LARGE[kind] + b"," + _HEAD + b"]"
    results = []
    for chunks in ([stream], split(stream, cuts)):
        t = JsonArrayToSSE(adapter_for("gemini"), Meter(), 200)
        results.append((run(t, chunks), t.meter.reports[0].unread_kind))
    assert results[0] == results[1]
    out, unread = results[0]
    assert (unread == "broken_stream") is (kind != "object")
    assert (b"upstream stream broken" in out) is (kind != "object")


@pytest.mark.parametrize(("element", "kind"), [
    (b"9" * 5000, "broken_stream"),                          # no object, past a limit
    (b"[" * 520 + b"]" * 520, "broken_stream"),
    (b'{"a": ' + b"9" * 5000 + b" @@@}", "oversized_event"),  # garbage past a limit
    (b'{"a": [' + b"{}," * 8400 + b"{}]}", "oversized_event"),  # valid, past the tokens
])
def test_a_large_element_past_the_readers_limits_is_never_forgiven(element: bytes,
                                                                    kind: str) -> None:
    """Found by review: past a reader's limit the rest of an element went unchecked and a
    later usage report cleared it. A top value that is no object is known from its first
    byte (the stream ends); otherwise the usage stays unread whatever follows."""
    stream = b"[" + _HEAD + b"," + element + b"," + _HEAD + b"]"
    t = JsonArrayToSSE(adapter_for("gemini"), Meter(), 2048)
    out = run(t, [stream[i:i + 1000] for i in range(0, len(stream), 1000)])
    assert t.meter.reports[0].unread_kind == kind
    assert (b"upstream stream broken" in out) is (kind == "broken_stream")


def test_a_large_unread_report_of_non_cumulative_usage_stays_unread() -> None:
    """Anthropic's message_start, larger than max_event_bytes and not JSON, was forgiven by
    message_delta's count under some splits (found by review)."""
    start = ('{"type": "message_start", "message": {"id": "m", "usage": {"input_tokens": '
             '2500, "output_tokens": 1}, "pad": "' + "x" * 600 + '"}')   # one } missing
    data = (f"event: message_start\ndata: {start}\n\n"
            'event: message_delta\ndata: {"type": "message_delta", "delta": {}, '
            '"usage": {"output_tokens": 7}}\n\n').encode()
    for size in (len(data), 100):
        observer = SSEObserver(adapter_for("anthropic"), Meter(), False, 256)
        run(observer, [data[i:i + size] for i in range(0, len(data), size)])
        assert observer.meter.reports[0].unread is not None, size


def test_a_long_number_beside_the_usage_leaves_it_readable() -> None:
    """JSON numbers of any length: Python's json refuses integers past 4,300 digits, which
    made the report unreadable (found by review)."""
    last = (b'{"candidates":[{"content":{"parts":[{"functionCall":{"name":"f","args":{"n":'
            + b"9" * 4400 + b'}}}]},"finishReason":"STOP"}],'
            b'"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":9}}')
    t = JsonArrayObserver(adapter_for("gemini"), Meter(), 1 << 20)
    run(t, [b"[" + _HEAD + b"," + last + b"]"])
    (report,) = t.meter.reports
    assert report.usage.output_tokens == 9 and report.unread is None


@settings(max_examples=150, deadline=None)
@given(size=st.integers(0, 300), broken=st.sampled_from([b"]", b"}]]", b']"}', b"}}"]),
       cuts=CUTS)
def test_an_element_too_large_to_hold_that_breaks_goes_out_as_much_for_any_split(
        size: int, broken: bytes, cuts: list[int]) -> None:
    """Found by review: an element past max_event_bytes whose brackets do not balance sent
    none of itself when it came whole, and what had come of it in earlier chunks when
    split: how much went out before the error event depended on the chunking. What came
    before the break goes out, then the error event, for any split."""
    element = b'{"candidates":[{"content":{"parts":[{"text":"' + b"x" * size + b'"}]}}' \
        + broken
    data = b"[" + element + b"]"
    whole_meter, split_meter = Meter(), Meter()
    whole = run(JsonArrayToSSE(adapter_for("gemini"), whole_meter, 100), [data])
    assert run(JsonArrayToSSE(adapter_for("gemini"), split_meter, 100),
               split(data, cuts)) == whole
    assert whole_meter.reports[0].unread_kind == split_meter.reports[0].unread_kind
