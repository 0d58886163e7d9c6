"""The stream cut (extproc.limits.cut): goldens of the terminal events in each provider's
format, the cut point (the event that reaches the allowance, then the terminal events, then
nothing), chunking independence (hypothesis), usage settlement, and the exchange ending the
response with its own end_of_stream in FULL_DUPLEX_STREAMED."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.codecs.sse import SSEDecoder
from extproc.limits.cut import StreamCut, cut_transform, settle_cut_usage
from extproc.limits.cut_events import (
    ChatCompletions,
    Completions,
    ErrorOnly,
    Gemini,
    Messages,
    Responses,
    format_for,
)
from extproc.mock import anthropic as m_anthropic
from extproc.mock import google as m_google
from extproc.mock import openai as m_openai
from extproc.mock import openai_completions as m_completions
from extproc.mock import openai_responses as m_responses
from extproc.mock.common import Reply
from extproc.providers import adapter_for
from extproc.providers.base import Usage
from extproc.providers.openai_legacy import OpenAICompletionsAdapter
from extproc.providers.openai_responses import OpenAIResponsesAdapter

TEXT = " ".join(f"w{i}" for i in range(30))
REPLY = Reply.make(TEXT, "m", "rid", 1700000000, 7)
MSG = [{"role": "user", "content": "hi"}]


def streams() -> dict[str, tuple[bytes, StreamCut]]:
    """name -> (whole upstream body, a fresh cut at 5 tokens) for every format."""
    def cut(fmt: Any, marker: bytes) -> StreamCut:
        return StreamCut(fmt, 5, marker, prompt=3)
    return {
        "chat": (b"".join(m_openai.build_stream({"model": "m", "messages": MSG,
                                                 "stream": True}, REPLY)),
                 cut(ChatCompletions(False), b'"content"')),
        "chat_usage": (b"".join(m_openai.build_stream(
            {"model": "m", "messages": MSG, "stream": True,
             "stream_options": {"include_usage": True}}, REPLY)),
            cut(ChatCompletions(True), b'"content"')),
        "completions": (b"".join(m_completions.build_stream(
            {"model": "m", "prompt": "hi", "stream": True}, REPLY)),
            cut(Completions(False), b'"text"')),
        "responses": (b"".join(m_responses.build_stream(
            {"model": "m", "input": "hi", "stream": True}, REPLY)),
            cut(Responses(), b'"response.output_text.delta"')),
        "anthropic": (b"".join(m_anthropic.build_stream(
            {"model": "m", "messages": MSG, "max_tokens": 100, "stream": True}, REPLY)),
            cut(Messages(), b'"text_delta"')),
        "gemini": (b"".join(m_google.build_stream({}, REPLY, sse=True)),
                   cut(Gemini(False), b'"text"')),
        "vertex": (b"".join(m_google.build_stream({}, REPLY, sse=True, vertex=True)),
                   cut(Gemini(False), b'"text"')),
        "gemini_array": (b"".join(m_google.build_stream({}, REPLY, sse=False)),
                         cut(Gemini(True), b'"text"')),
    }


def run(cut: StreamCut, chunks: list[bytes]) -> bytes:
    out = b"".join(cut.feed(c) for c in chunks if c)
    return out + cut.finish()


def sse_docs(body: bytes) -> list[tuple[str | None, Any]]:
    d = SSEDecoder()
    events = d.feed(body) + d.finish()
    return [(e.event, json.loads(e.data) if e.data.startswith("{") else e.data)
            for e in events if e.has_data]


def test_chat_ends_with_length_then_done() -> None:
    body, cut = streams()["chat"]
    out = run(cut, [body])
    docs = sse_docs(out)
    assert cut.ended and docs[-1] == (None, "[DONE]")
    last = docs[-2][1]
    assert last["object"] == "chat.completion.chunk"
    assert last["choices"] == [{"index": 0, "delta": {}, "logprobs": None,
                                "finish_reason": "length"}]
    assert last["id"] == docs[0][1]["id"] and "usage" not in last
    # counted as the settlement counts (DeliveredText: one token per "content" fragment,
    # the role chunk's empty one included): the 5th fragment reaches 5, and is the last
    fragments = [c["delta"] for _, d in docs[:-2] for c in d["choices"]
                 if "content" in c["delta"]]
    assert cut.tokens == 5 and len(fragments) == 5 and fragments[-1]["content"]


def test_chat_usage_chunk_when_the_client_asked() -> None:
    body, cut = streams()["chat_usage"]
    docs = sse_docs(run(cut, [body]))
    assert docs[-1] == (None, "[DONE]")
    usage = docs[-2][1]
    assert usage["choices"] == [] and usage["usage"] == {
        "prompt_tokens": 3, "completion_tokens": cut.tokens, "total_tokens": 3 + cut.tokens}
    assert docs[-3][1]["choices"][0]["finish_reason"] == "length"
    assert docs[-3][1]["usage"] is None


def test_golden_terminal_events() -> None:
    chat = ChatCompletions(False)
    chat.see({"id": "c1", "created": 5, "model": "m", "system_fingerprint": "fp",
              "choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": None},
                          {"index": 1, "delta": {}, "finish_reason": "stop"}]}, None)
    assert chat.terminal(9, 2) == (
        b'data: {"id":"c1","object":"chat.completion.chunk","created":5,"model":"m",'
        b'"system_fingerprint":"fp","choices":[{"index":0,"delta":{},"logprobs":null,'
        b'"finish_reason":"length"}]}\n\ndata: [DONE]\n\n')
    comp = Completions(True)
    comp.see({"id": "k", "created": 1, "model": "m", "choices": [{"index": 0, "text": "a",
                                                                  "finish_reason": None}]},
             None)
    assert comp.terminal(4, 2) == (
        b'data: {"id":"k","object":"text_completion","created":1,"model":"m","choices":'
        b'[{"text":"","index":0,"logprobs":null,"finish_reason":"length"}],"usage":null}\n\n'
        b'data: {"id":"k","object":"text_completion","created":1,"model":"m","choices":[],'
        b'"usage":{"prompt_tokens":2,"completion_tokens":4,"total_tokens":6}}\n\n'
        b'data: [DONE]\n\n')
    msg = Messages()
    msg.see({"type": "content_block_start", "index": 0, "content_block": {"type": "text"}},
            "content_block_start")
    assert msg.terminal(7, None) == (
        b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
        b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":'
        b'"max_tokens","stop_sequence":null},"usage":{"output_tokens":7}}\n\n'
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    gem = Gemini(False)
    gem.see({"candidates": [{"content": {"parts": [{"text": "a"}]}, "index": 0}],
             "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 6,
                               "totalTokenCount": 10}, "modelVersion": "g"}, None)
    assert gem.terminal(6, None) == (
        b'data: {"candidates": [{"content": {"role": "model","parts": []},"finishReason": '
        b'"MAX_TOKENS","index": 0}],"usageMetadata": {"promptTokenCount": 4,'
        b'"candidatesTokenCount": 6,"totalTokenCount": 10},"modelVersion": "g"}\r\n\r\n')
    resp = Responses()
    resp.see({"type": "response.created", "sequence_number": 0,
              "response": {"id": "r", "object": "response", "status": "in_progress"}}, None)
    resp.see({"type": "response.output_text.delta", "sequence_number": 4}, None)
    event, doc = sse_docs(resp.terminal(3, 2))[0]
    assert event == "response.incomplete" and doc["sequence_number"] == 5
    assert doc["response"]["status"] == "incomplete"
    assert doc["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert doc["response"]["usage"]["output_tokens"] == 3
    err = ErrorOnly("openai").terminal(1, 1)
    assert sse_docs(err)[0][1]["error"]["type"] == "rate_limit_exceeded" or \
        "budget" in sse_docs(err)[0][1]["error"]["message"]


def test_format_for_each_endpoint() -> None:
    assert type(format_for(adapter_for("openai"), "openai")) is ChatCompletions
    assert type(format_for(OpenAICompletionsAdapter("openai"), "openai")) is Completions
    assert type(format_for(OpenAIResponsesAdapter("azure"), "azure")) is Responses
    assert type(format_for(adapter_for("anthropic"), "anthropic")) is Messages
    assert type(format_for(adapter_for("vertex"), "vertex")) is Gemini


def test_anthropic_closes_the_open_block() -> None:
    body, cut = streams()["anthropic"]
    docs = sse_docs(run(cut, [body]))
    kinds = [e for e, _ in docs]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert docs[-2][1]["delta"]["stop_reason"] == "max_tokens"
    assert docs[-2][1]["usage"]["output_tokens"] == cut.tokens == 5
    assert kinds.count("content_block_stop") == 1


def test_gemini_counts_the_reported_usage_exactly() -> None:
    body, cut = streams()["gemini"]
    docs = sse_docs(run(cut, [body]))
    last = docs[-1][1]
    assert last["candidates"][0]["finishReason"] == "MAX_TOKENS"
    # the mock reports candidatesTokenCount = pieces so far: cut at exactly 5
    assert last["usageMetadata"]["candidatesTokenCount"] == 5 == cut.tokens
    assert sum(1 for _, d in docs if d["candidates"][0]["content"].get("parts")) == 5


def test_gemini_array_stays_a_valid_array() -> None:
    body, cut = streams()["gemini_array"]
    out = run(cut, [body])
    arr = json.loads(out)
    assert arr[-1]["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert len(arr) == 6 and cut.ended


def test_a_finished_stream_is_not_cut() -> None:
    body, _ = streams()["chat"]
    cut = StreamCut(ChatCompletions(False), 10_000, b'"content"')
    assert run(cut, [body]) == body and not cut.ended
    short = Reply.make("a b", "m", "r", 1, 1)
    body = b"".join(m_anthropic.build_stream({"model": "m", "messages": MSG,
                                              "max_tokens": 9, "stream": True}, short))
    cut = StreamCut(Messages(), 2, b'"text_delta"')
    out = run(cut, [body])
    assert b'"max_tokens"' not in out or cut.ended


def test_nothing_after_the_cut() -> None:
    body, cut = streams()["chat"]
    first = cut.feed(body)
    assert cut.ended
    assert cut.feed(b'data: {"choices":[{"delta":{"content":"more"}}]}\n\n') == b""
    assert cut.finish() == b""
    assert first.endswith(b"data: [DONE]\n\n")


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(streams())), st.lists(st.integers(1, 400), max_size=40))
def test_any_chunking_gives_the_same_output(name: str, cuts: list[int]) -> None:
    body, whole = streams()[name]
    expected = run(whole, [body])
    _, cut = streams()[name]
    chunks, pos = [], 0
    for n in cuts:
        chunks.append(body[pos:pos + n])
        pos += n
    chunks.append(body[pos:])
    assert run(cut, chunks) == expected
    assert cut.tokens == whole.tokens


class _Ex:
    def __init__(self, **state: Any) -> None:
        self.state = dict(state)
        self.metadata: dict[str, object] = {}
        self.status = 200
        self.provider = "openai"
        self.endpoint = None
        self.response_headers = {"content-type": "text/event-stream"}
        self._pending: dict[str, str] = {}

    def pending_response_header(self, name: str) -> str | None:
        return self._pending.get(name)


def test_cut_transform_needs_an_allowance_and_a_stream() -> None:
    adapter = adapter_for("openai")
    assert cut_transform(_Ex(), adapter) is None   # type: ignore[arg-type]
    ex = _Ex(output_allowance=3)
    ex.response_headers = {"content-type": "application/json"}
    assert cut_transform(ex, adapter) is None  # type: ignore[arg-type]
    t = cut_transform(_Ex(output_allowance=3), adapter)  # type: ignore[arg-type]
    assert isinstance(t, StreamCut) and t.ends_early


def test_settlement_charges_the_delivered_output() -> None:
    body, _ = streams()["anthropic"]
    ex = _Ex(usage=Usage(input_tokens=20, output_tokens=1),   # message_start's report
             output_allowance=5)
    ex.provider = "anthropic"
    t = cut_transform(ex, adapter_for("anthropic"))  # type: ignore[arg-type]
    assert t is not None
    run(t, [body])  # type: ignore[arg-type]
    usage = ex.state["usage"]
    assert (usage.output_tokens, usage.total_tokens) == (5, 25)
    assert ex.metadata["cut"] == "budget" and ex.metadata["output_tokens"] == 5
    empty = _Ex(usage=Usage())
    settle_cut_usage(empty, t)  # type: ignore[arg-type]
    assert empty.state["usage"].is_empty()   # the settlement estimates it then


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 4000), st.booleans())
def test_an_event_it_cannot_count_ends_the_stream_before_it(inside: int, array: bool) -> None:
    """An event past max_event_bytes, cut anywhere: the budget cannot be kept past it, so
    the stream ends there the provider's way, and no byte of that event is sent (before, the
    cut passed the stream on uncounted and lost what it held of the event)."""
    if array:
        body, cut = streams()["gemini_array"]
        first = body.index(b"\n,") + 1
        big = b'\n,{"candidates": [{"content": {"parts": [{"text": "' + b"y" * 5000 \
            + b'"}]}}]}'
    else:
        body, cut = streams()["chat"]
        first = body.index(b"\n\n") + 2
        big = b'data: {"choices":[{"index":0,"delta":{"content":"' + b"y" * 5000 \
            + b'"}}]}\n\n'
    cut.__init__(cut.fmt, 10_000, cut.marker, prompt=3, max_event_bytes=2048)
    stream = body[:first] + big + body[first:]
    at = first + min(inside, len(big) - 1)
    out = run(cut, [stream[:at], stream[at:]])
    assert cut.ended and cut.unreadable is not None and b"yyyy" not in out
    assert out.startswith(body[:first] if not array else body[:first - 1])
    if array:
        arr = json.loads(out)
        assert arr[-1]["candidates"][0]["finishReason"] == "MAX_TOKENS"
    else:
        assert out.endswith(b"data: [DONE]\n\n") and b'"finish_reason":"length"' in out
    ex = _Ex()
    settle_cut_usage(ex, cut)   # type: ignore[arg-type]
    assert ex.metadata["cut"] == "unreadable"


def test_the_cut_holds_events_as_large_as_the_route_reads() -> None:
    """The cut takes the route's streams.max_event_bytes, not a fixed 1 MiB: a route raised
    for images counts a 2 MiB event (before, it ended such a stream as unreadable), and a
    route lowered to 2 KiB holds no more than that."""
    from extproc import loader
    from extproc.limits.policy import RateLimit

    def route(size: int) -> Any:
        cfg = loader.parse({"routes": [{
            "name": "r", "provider": "openai", "streams": {"max_event_bytes": size},
            "rate_limits": [{"name": "t", "key": ["header:x-who"], "cut_streams": True,
                             "tokens": [{"limit": 10_000_000, "per": "1h"}]}]}]})
        (rate,) = [p for p in cfg.routes["r"].policies if isinstance(p, RateLimit)]
        return rate

    assert route(4 << 20).max_event_bytes == 4 << 20
    body, _ = streams()["chat"]
    first = body.index(b"\n\n") + 2
    big = b'data: {"choices":[{"index":0,"delta":{"content":"' + b"y " * (1 << 20) \
        + b'"}}]}\n\n'
    stream = body[:first] + big + body[first:]
    for size, ends in ((4 << 20, False), (2048, True)):
        t = cut_transform(_Ex(output_allowance=10_000_000), adapter_for("openai"),
                          max_event_bytes=route(size).max_event_bytes)  # type: ignore[arg-type]
        assert isinstance(t, StreamCut)
        out = run(t, [stream[:first + 1000], stream[first + 1000:]])
        assert (t.unreadable is not None) is ends
        assert (out == stream) is not ends


def _gemini_chunk(i: int, finish: str | None, spelling: str = "finishReason") -> bytes:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": f"word{i} " * 10}],
                                             "role": "model"}, "index": 0}
    if finish is not None:
        candidate[spelling] = finish
    doc = {"candidates": [candidate],
           "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 20 * (i + 1),
                             "totalTokenCount": 3 + 20 * (i + 1)}}
    return b"data: " + json.dumps(doc).encode() + b"\r\n\r\n"


def test_a_gemini_finish_reason_that_ends_nothing_does_not_stop_the_cut() -> None:
    """Serialisers that write proto defaults put FINISH_REASON_UNSPECIFIED on every chunk:
    a candidate that says so has not finished, and the stream is still cut at its budget,
    as one without a finishReason is (the adapter, and guards, read it the same way)."""
    for finish in (None, "FINISH_REASON_UNSPECIFIED", ""):
        body = b"".join(_gemini_chunk(i, finish) for i in range(10)) \
            + _gemini_chunk(10, "STOP")
        cut = StreamCut(Gemini(False), 25, b'"text"', prompt=3)
        docs = sse_docs(run(cut, [body]))
        assert cut.ended and cut.tokens == 40, finish
        assert docs[-1][1]["candidates"][0]["finishReason"] == "MAX_TOKENS"
        assert len(docs) == 3
    # a real finish reason, in either spelling, ends the candidate: nothing left to cut
    for spelling in ("finishReason", "finish_reason"):
        fmt = Gemini(False)
        fmt.see(json.loads(_gemini_chunk(0, "STOP", spelling)[6:]), None)
        assert fmt.finished()
        fmt = Gemini(False)
        fmt.see(json.loads(_gemini_chunk(0, "FINISH_REASON_UNSPECIFIED", spelling)[6:]), None)
        assert not fmt.finished()
