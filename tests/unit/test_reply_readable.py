"""What goes out of a guarded reply is what the guards read (the reply audit):

* an SSE event's comments, `id`, `retry` and unknown lines never go out as they came
  (`event_stream.plain`): a reply labelled `text/event-stream` that is really a JSON body (no
  `data:` line: one event without data) reached an SDK that reads it as JSON, unread;
* a reply event or whole reply that repeats a JSON key is refused as unreadable
  (`codecs.jsonunique`): the guards read the copy Python keeps, the last; a client's parser
  may keep the first;
* an error reply (a status other than 2xx) is read whole (`guards.errors`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import grpc
import pytest
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc import loader
from extproc.codecs import jsonunique
from extproc.codecs.sse import Event, SSEDecoder
from extproc.guards.event_stream import plain
from extproc.guards.reframe import SSEMaskingReframer
from extproc.guards.scanner import Scanner, builtin
from extproc.guards.stream import GuardTriggered, StreamMasker
from extproc.servicer import Processor
from tests.unit.test_exchange import request_body, request_headers, response_body, response_headers

SCANNER = Scanner(builtin(["email"]))
EMAIL = "john.doe@example.com"


def masked(provider: str, body: bytes, cut: list[int] | None = None,
           action: str = "mask") -> bytes:
    t = SSEMaskingReframer(provider, lambda: [StreamMasker(SCANNER, action=action)], 1 << 20)
    bounds = [0, *sorted(set(cut or [])), len(body)]
    out = b"".join(t.feed(body[a:b]) for a, b in itertools.pairwise(bounds) if b > a)
    return out + t.finish()


def event(raw: bytes, terminated: bool = True) -> Event:
    decoder = SSEDecoder(1 << 20)
    events = decoder.feed(raw) + ([] if terminated else decoder.finish())
    assert len(events) == 1, events
    return events[0]


# --- plain --------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "out"), [
    (b'data: {"a":1}\n\n', b'data: {"a":1}\n\n'),                      # as it came
    (b'event: x\ndata: {"a":1}\r\n\r\n', b'event: x\ndata: {"a":1}\r\n\r\n'),
    (b": " + EMAIL.encode() + b"\n\n", b":\n\n"),                     # a comment
    (b"event: x\nid: " + EMAIL.encode() + b"\n\n", b":\n\n"),         # no data
    (b'id: 7\nretry: 10\ndata: {"a":1}\n\n', b'data: {"a":1}\n\n'),
    (b'data: {"a":1}\n: ' + EMAIL.encode() + b'\r\n\r\n', b'data: {"a":1}\r\n\r\n'),
    (b"DATA: " + EMAIL.encode() + b"\n\n", b":\n\n"),                 # fields are cased
    (b'data:{"a":1}\ndata:2\n\n', b'data:{"a":1}\ndata:2\n\n'),
    (b"event: ping\n\n", b":\n\n"),                                   # a name, no data
    # two names: a client keeps the last; the first goes unread, so it goes (found by
    # review)
    (b"event: mail " + EMAIL.encode() + b'\nevent: ping\ndata: {"a":1}\n\n',
     b'event: ping\ndata: {"a":1}\n\n'),
])
def test_plain_keeps_only_what_a_client_reads(raw: bytes, out: bytes) -> None:
    ev = event(raw)
    got = plain(ev)
    assert got.raw == out
    again = event(out)   # what a client dispatches is unchanged (one without data: nothing)
    assert again.has_data == ev.has_data
    if ev.has_data:
        assert (again.data, again.event) == (ev.data, ev.event)


@pytest.mark.parametrize("name", [b"4111111111111111", b"123-45-6789", b"1"])
def test_a_name_that_is_no_word_is_unreadable(name: bytes) -> None:
    """A provider names its events with words; a number as a name (a card's, an SSN) is no
    text a guard can mask in place (found by review)."""
    with pytest.raises(GuardTriggered):
        plain(event(b"event: " + name + b'\ndata: {"a":1}\n\n'))


def test_plain_of_an_unterminated_event() -> None:
    assert plain(event(b"{" + EMAIL.encode() + b"}", terminated=False)).raw == b""
    # one with data is ended, as the guards and the SDKs read it: the events a masker adds
    # after it (the text it still held) must not join its line (found by review)
    ev = plain(event(b'data: {"a":1}\n: x', terminated=False))
    assert ev.raw == b'data: {"a":1}\n\n' and ev.terminated


WHOLE = json.dumps({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant",
                                             "content": f"mail {EMAIL}"}}]}).encode()
STREAM = (b": keep-alive " + EMAIL.encode() + b"\n\n"
          b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
          b'"choices":[{"index":0,"delta":{"content":"mail john.doe@exa"},'
          b'"finish_reason":null}]}\nid: ' + EMAIL.encode() + b"\n\n"
          b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
          b'"choices":[{"index":0,"delta":{"content":"mple.com ok"},'
          b'"finish_reason":null}]}\n\n'
          b"data: [DONE]\n\n")


@pytest.mark.parametrize("action", ["mask", "reject"])
@pytest.mark.parametrize("body", [WHOLE, STREAM], ids=["json-body", "stream"])
@settings(max_examples=60, deadline=None)
@given(cut=st.lists(st.integers(min_value=1, max_value=len(STREAM) - 1), max_size=6))
def test_nothing_unread_goes_out_under_any_chunking(body: bytes, action: str,
                                                    cut: list[int]) -> None:
    cut = [c for c in cut if c < len(body)]
    out = masked("openai", body, cut, action)
    assert EMAIL.encode() not in out and b"example.com" not in out, out
    assert out == masked("openai", body, None, action)   # any split, the same output


@pytest.mark.parametrize("raw", [b"event: " + EMAIL.encode() + b"\n\n",
                                 b"event: " + EMAIL.encode() + b'\ndata: {"type":"ping"}\n\n'])
def test_an_event_name_no_provider_gives_ends_the_stream_refused(raw: bytes) -> None:
    out = masked("anthropic", raw)
    assert EMAIL.encode() not in out and b"unreadable" in out, out


def test_a_keep_alive_comment_stays_a_comment() -> None:
    assert masked("openai", b": ping\n\n") == b":\n\n"
    assert masked("gemini", b": ping\r\n\r\n") == b":\r\n\r\n"


# --- repeated keys ------------------------------------------------------------------------

@pytest.mark.parametrize(("provider", "raw"), [
    ("openai", b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
               b'"choices":[{"index":0,"delta":{"content":"mail ' + EMAIL.encode() + b'"},'
               b'"finish_reason":null}],"choices":[]}\n\n'),
    ("anthropic", b'event: content_block_delta\ndata: {"type":"content_block_delta",'
                  b'"index":0,"delta":{"type":"text_delta","text":"mail ' + EMAIL.encode()
                  + b'"},"delta":{"type":"text_delta","text":""}}\n\n'),
    ("gemini", b'data: {"candidates":[{"content":{"parts":[{"text":"mail ' + EMAIL.encode()
               + b'"}],"role":"model"},"index":0}],"candidates":[]}\r\n\r\n'),
])
def test_an_event_that_repeats_a_key_ends_the_stream_refused(provider: str, raw: bytes) -> None:
    out = masked(provider, raw)
    assert EMAIL.encode() not in out
    assert b"cannot read" in out or b"not read" in out or b"unreadable" in out, out


def test_jsonunique_reads_as_json_loads_but_refuses_a_repeated_key() -> None:
    for text in ('{"a":[1,{"b":null}],"c":"\\u0041"}', b'\xef\xbb\xbf{"a":1}', "[]"):
        assert jsonunique.loads(text) == json.loads(text)
    for text in ('{"a":1,"a":1}', '{"x":{"a":1,"\\u0061":2}}', b'{"a":1,"a":2}'):
        with pytest.raises(jsonunique.RepeatedKey):
            jsonunique.loads(text)
    with pytest.raises(ValueError):
        jsonunique.loads("\ufeff{}")   # a BOM in text, as json.loads refuses it


# --- whole and error replies, through the servicer ------------------------------------------

CONFIG = {"guards": {"keys": {"detectors": ["secrets"], "action": "reject"},
                     "pii": {"detectors": ["email"], "action": "mask"}},
          "routes": [{"name": "openai", "provider": "openai", "guards": ["keys", "pii"]}]}
CHAT = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'


class Call:
    def __init__(self, messages: list[pb.ProcessingRequest]) -> None:
        self.messages = messages
        self.replies: list[pb.ProcessingResponse] = []

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("x-extproc-route", "openai"),)

    async def read(self) -> Any:
        return self.messages.pop(0) if self.messages else grpc.aio.EOF

    async def write(self, reply: Any) -> None:
        self.replies.append(reply if isinstance(reply, pb.ProcessingResponse)
                            else pb.ProcessingResponse.FromString(reply))


def exchange(status: int, body: bytes, ctype: str = "application/json"
             ) -> list[pb.ProcessingResponse]:
    """One non-streamed exchange on a guarded route: the replies to the reply's messages."""
    call = Call([request_headers({":path": "/openai/v1/chat/completions"}, req_mode=1,
                                 resp_mode=2),
                 request_body(CHAT, True),
                 response_headers(status, **{"content-type": ctype}),
                 response_body(body, True)])
    asyncio.run(Processor(loader.parse(CONFIG)).Process(None, call))  # type: ignore[arg-type]
    return call.replies[2:]


def sent(replies: list[pb.ProcessingResponse]) -> tuple[int | None, bytes]:
    """The status and body the client gets: an immediate response's, or the body mutation's
    (None: the upstream's own status)."""
    last = replies[-1]
    if last.HasField("immediate_response"):
        return last.immediate_response.status.code, last.immediate_response.body
    mutation = last.response_body.response.body_mutation
    return None, mutation.body


def test_a_whole_reply_that_repeats_a_key_is_refused() -> None:
    doc = WHOLE.replace(b'"content": "mail', b'"content": "ok", "content": "mail')
    status, body = sent(exchange(200, doc))
    assert status == 502 and EMAIL.encode() not in body
    assert b"not a JSON object the gateway" in body


@pytest.mark.parametrize("status", [201, 500])
def test_a_reply_of_another_status_is_masked(status: int) -> None:
    err = json.dumps({"error": {"message": f"saw {EMAIL}", "type": "server_error"}}).encode()
    code, body = sent(exchange(status, WHOLE if status < 300 else err))
    assert code is None and EMAIL.encode() not in body and b"<EMAIL>" in body, body


def test_an_error_reply_in_plain_text_is_read_as_one_text() -> None:
    code, body = sent(exchange(502, f"upstream said {EMAIL}".encode(), "text/plain"))
    assert code is None and body == b"upstream said <EMAIL>"
    code, body = sent(exchange(502, b"key AKIAIOSFODNN7EXAMPLE", "text/html"))
    assert code == 502 and b"AKIA" not in body and b"withheld" in body


@pytest.mark.parametrize("body", [
    b'"john.doe\\u0040example.com"',                          # a JSON string, escaped
    b'{"error":{"message":"saw john.doe\\u0040example.com"}}'])
def test_an_error_reply_is_read_with_its_escapes_decoded(body: bytes) -> None:
    code, out = sent(exchange(500, body))
    assert code is None and EMAIL not in json.dumps(json.loads(out)), out


@pytest.mark.parametrize("body", [
    b'{"error":{"message":"ok","message":"john.doe\\u0040example.com"}}',
    b'{"error":{"message":"a","message":"key \\u0041KIAIOSFODNN7EXAMPLE"}}',
    b"[" * 5000 + b"]" * 5000])
def test_an_error_reply_no_guard_reads_one_way_is_withheld(body: bytes) -> None:
    code, out = sent(exchange(429, body))
    assert code == 429 and b"withheld" in out and b"example" not in out, out


def test_an_encoded_error_reply_is_replaced() -> None:
    call = Call([request_headers({":path": "/openai/v1/chat/completions"}, req_mode=1,
                                 resp_mode=2),
                 request_body(CHAT, True),
                 response_headers(500, **{"content-type": "application/json",
                                          "content-encoding": "gzip"}),
                 response_body(b"\x1f\x8b...", True)])
    asyncio.run(Processor(loader.parse(CONFIG)).Process(None, call))  # type: ignore[arg-type]
    code, body = sent(call.replies[2:])
    assert code == 500 and b"gzip-encoded" in body


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_an_event_name_a_guard_finds_something_in_ends_the_stream(provider: str) -> None:
    """A name cannot be masked: one holding what a guard finds (a card number after a
    letter, which the name rule lets through) ends the stream refused (found by review)."""
    cards = Scanner(builtin(["card"]))
    t = SSEMaskingReframer(provider, lambda: [StreamMasker(cards, action="mask")], 1 << 20)
    data = b'{"type":"ping"}' if provider == "anthropic" else (
        b'{"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
        b'"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}')
    out = t.feed(b"event: x.4111111111111111\ndata: " + data + b"\n\n") + t.finish()
    assert b"4111111111111111" not in out and b"error" in out
    clean = SSEMaskingReframer(provider, lambda: [StreamMasker(cards, action="mask")], 1 << 20)
    assert b"event: ping" in clean.feed(b"event: ping\ndata: " + data + b"\n\n")
