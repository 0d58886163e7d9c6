"""A stream that ends in an error event after only a partial usage report (Anthropic's
message_start says one output token; a Gemini stream's running count stops where it broke)
is charged at least the prompt estimate plus the output delivered, as a stream that ended
without any report is: the usage is trusted only when the stream ended as the provider ends
one (`StreamReport.final`). Driven through a real Exchange, sans-IO, for every provider; and
the settlement arithmetic on its own."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from extproc import loader
from extproc import protocol as P
from extproc.exchange import Exchange
from extproc.limits import spending
from extproc.llm.transforms import SSEObserver, StreamReport
from extproc.mock import anthropic as m_anthropic
from extproc.mock import google as m_google
from extproc.mock import openai as m_openai
from extproc.mock.common import Reply
from extproc.providers import adapter_for
from extproc.providers.base import Usage
from extproc.spend.prices import Price
from tests.unit.test_exchange import (
    request_body,
    request_headers,
    response_body,
    response_headers,
    send,
)

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
N = 600
REPLY = Reply.make(" ".join(f"w{i}" for i in range(N)), "m", "rid", 1700000000, 7)
MSG = [{"role": "user", "content": "hi"}]
ANTHROPIC_ERROR = (b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
                   b'"message":"Overloaded"}}\n\n')
OPENAI_ERROR = (b'data: {"error":{"message":"The server had an error","type":"server_error",'
                b'"param":null,"code":null}}\n\n')
GEMINI_ERROR = (b'data: {"error": {"code": 503,"message": "The model is overloaded.",'
                b'"status": "UNAVAILABLE"}}\r\n\r\n')


def _report(provider: str, body: bytes) -> StreamReport:
    seen: list[StreamReport] = []
    t = SSEObserver(adapter_for(provider), seen.append, provider == "gemini", 1 << 20)
    t.feed(body)
    t.finish()
    return seen[0]


@pytest.mark.parametrize(("golden", "provider", "final"), [
    ("anthropic_error_stream.sse", "anthropic", False),
    ("openai_midstream_error.sse", "openai", False),
    ("gemini_midstream_error.sse", "gemini", False),
    ("anthropic_text_stream.sse", "anthropic", True),
    ("anthropic_thinking_stream.sse", "anthropic", True),
])
def test_only_a_stream_that_ended_as_the_provider_ends_one_reports_final_usage(
        golden: str, provider: str, final: bool) -> None:
    assert _report(provider, (GOLDEN / golden).read_bytes()).final is final


def test_a_stream_that_stopped_without_a_finish_reason_is_not_final() -> None:
    frames = m_anthropic.build_stream({}, REPLY)
    body = b"".join(f for f in frames if b"message_delta" not in f and b"message_stop" not in f)
    report = _report("anthropic", body)
    assert report.usage.output_tokens == 1 and not report.final


def _without_closing_usage(frames: list[bytes]) -> bytes:
    out = []
    for f in frames:
        if b"message_delta" in f:
            head, _, data = f.partition(b"data: ")
            doc = json.loads(data)
            doc.pop("usage")
            f = head + b"data: " + json.dumps(doc).encode() + b"\n\n"
        out.append(f)
    return b"".join(out)


def test_a_finish_without_its_usage_is_not_final() -> None:
    """Found by the red team: an Anthropic message_delta without its usage (a broken or
    hostile upstream, a relay) left message_start's one output token as a final report: 600
    delivered words were charged 8 tokens. Usage is final only when a report came with the
    finish or after it."""
    body = _without_closing_usage(m_anthropic.build_stream({}, REPLY))
    report = _report("anthropic", body)
    assert report.usage.output_tokens == 1 and not report.final
    whole = _report("anthropic", b"".join(m_anthropic.build_stream({}, REPLY)))
    assert whole.final and whole.usage.output_tokens > 1
    # an OpenAI-compatible relay that sends the usage chunk before the finish chunk: what
    # came after the report is not in it
    frames = m_openai.build_stream({"stream_options": {"include_usage": True}}, REPLY)
    usage = next(f for f in frames if b'"choices":[]' in f)
    finish = next(i for i, f in enumerate(frames) if b'"finish_reason":"' in f)
    early = [f for f in frames[:finish] if f is not usage] + [usage] + [
        f for f in frames[finish:] if f is not usage]
    early.insert(1, early.pop(early.index(usage)))
    report = _report("openai", b"".join(early))
    assert report.finish_reason and report.usage.output_tokens and not report.final
    # OpenAI: the usage chunk after the finish chunk; Gemini: on the finish element
    for provider, frames in (
            ("openai", m_openai.build_stream({"stream_options": {"include_usage": True}},
                                             REPLY)),
            ("gemini", m_google.build_stream({}, REPLY, sse=True))):
        assert _report(provider, b"".join(frames)).final, provider


def _anthropic() -> tuple[str, bytes, bytes]:
    frames = m_anthropic.build_stream({}, REPLY)
    stop = next(i for i, f in enumerate(frames) if b"content_block_stop" in f)
    body = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 8000, "stream": True,
                       "messages": MSG}).encode()
    return "/v1/messages", body, b"".join(frames[:stop]) + ANTHROPIC_ERROR


def _openai() -> tuple[str, bytes, bytes]:
    req = {"model": "gpt-4o", "max_tokens": 8000, "stream": True, "messages": MSG}
    frames = m_openai.build_stream({**req, "stream_options": {"include_usage": True}}, REPLY)
    done = next(i for i, f in enumerate(frames) if b'"finish_reason":"' in f)
    return "/v1/chat/completions", json.dumps(req).encode(), \
        b"".join(frames[:done]) + OPENAI_ERROR


def _gemini() -> tuple[str, bytes, bytes]:
    """Running usage only on the first element (as Vertex's intermediate chunks may carry
    none), then an error element."""
    req = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
           "generationConfig": {"maxOutputTokens": 8000}}
    frames = m_google.build_stream(req, REPLY, sse=True)
    body = [frames[0]]
    for f in frames[1:-1]:
        doc = json.loads(f[len(b"data: "):].strip())
        doc.pop("usageMetadata", None)
        body.append(b"data: " + json.dumps(doc, separators=(",", ": ")).encode() + b"\r\n\r\n")
    path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    return path, json.dumps(req).encode(), b"".join(body) + GEMINI_ERROR


CASES = {"anthropic": _anthropic, "openai": _openai, "gemini": _gemini}
#: the output price per million tokens, in the shipped table, of each case's model
OUTPUT_PRICE = {"anthropic": Decimal(15), "openai": Decimal(10), "gemini": Decimal("2.5")}


async def _run(provider: str, cut: bool = False) -> dict[str, Any]:
    path, req, stream = CASES[provider]()
    name = f"partial-{provider}-{cut}"      # (in-memory budgets are kept per process)
    cfg = loader.parse({
        "routes": [{"name": name, "provider": provider, "rate_limits": [{
            "name": "t", "key": [], "tokens": [{"limit": 10 ** 6, "per": "1d"}],
            "spend": [{"limit": 100, "per": "1d"}], "cut_streams": cut}]}]})
    route = cfg.route(name)
    ex = Exchange(route, name)
    await send(ex, request_headers(req_mode=P.BUFFERED, resp_mode=P.STREAMED, path=path))
    await send(ex, request_body(req, True))
    await send(ex, response_headers(200, **{"content-type": "text/event-stream"}))
    for i in range(0, len(stream), 700):
        await send(ex, response_body(stream[i:i + 700], i + 700 >= len(stream)))
    ex.close()
    for p in route.finishers:
        await p.on_finish(ex)
    return ex.state


@pytest.mark.parametrize("cut", [False, True])
@pytest.mark.parametrize("provider", sorted(CASES))
async def test_a_stream_ended_by_an_error_is_charged_the_output_delivered(
        provider: str, cut: bool) -> None:
    state = await _run(provider, cut)
    assert state.get("upstream_error")
    assert state.get("usage_partial") is True
    delivered = N - 1       # the mock's pieces, about a token each, all but the last
    assert state["tokens_charged"] >= delivered
    # spend: at least the delivered output at its model's output price
    assert state["spend_charged"] >= delivered * OUTPUT_PRICE[provider] / 10 ** 6


def test_charge_trusts_a_partial_report_only_as_far_as_it_goes() -> None:
    price = Price(input=Decimal(1), output=Decimal(10))
    partial = Usage(input_tokens=7, output_tokens=1, total_tokens=8)
    whole = spending.charge(price, partial, 5, 3000, 200)
    assert whole == price.cost(partial)                       # a final report: as reported
    counted = spending.charge(price, partial, 5, 3000, 200, partial=True)
    assert counted == price.cost(Usage(input_tokens=5, output_tokens=3000))
    big = Usage(input_tokens=7, output_tokens=5000)
    assert spending.charge(price, big, 5, 3000, 200, partial=True) == price.cost(big)
    # media no count can size: at least the reservation, unless the report is final
    reserved = Decimal("0.5")
    assert spending.charge(price, None, 5, 30, 200, reserved=reserved, media=True) == reserved
    assert spending.charge(price, partial, 5, 30, 200, reserved=reserved,
                           media=True) == price.cost(partial)
    assert spending.charge(price, partial, 5, 30, 500, partial=True, media=True) == 0


def test_a_report_read_from_the_tail_of_an_event_too_large_to_read_is_final() -> None:
    """Gemini writes finishReason and usageMetadata after the parts of its last event: read
    from the last bytes of an event past max_event_bytes, the report is final, not partial
    (the budgets then charge it exactly)."""
    frames = m_google.build_stream({}, Reply.make("x" * 5000, "m", "r", 0, 7), sse=True)
    seen: list[StreamReport] = []
    t = SSEObserver(adapter_for("gemini"), seen.append, True, 1024)
    for f in frames:
        for i in range(0, len(f), 256):
            t.feed(f[i:i + 256])
    t.finish()
    assert seen[0].usage.output_tokens and seen[0].unread is None
    assert seen[0].finish_reason == "STOP" and seen[0].final
