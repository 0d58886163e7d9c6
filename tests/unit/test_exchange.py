"""The sans-IO protocol core: `Exchange.handle` fed hand-built ext_proc messages.

No gRPC and no Envoy: each test plays Envoy's side of one stream and checks the replies
against the protocol rules (one reply per message outside FULL_DUPLEX_STREAMED, only
`streamed_response` replies inside it, raw_value-only headers, provider-shaped errors).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import pytest
from envoy.config.core.v3.base_pb2 import HeaderMap, HeaderValue
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from google.protobuf.message import Message
from hypothesis import example, given, settings
from hypothesis import strategies as st

from extproc import headerlimits
from extproc import protocol as P
from extproc.config import RouteConfig
from extproc.exchange import Exchange
from extproc.policy import Policy, Reject
from tests.plugins import Gatekeeper, TagRequest, UpperResponse

BODY_MODES = (P.BUFFERED, P.STREAMED)
Headers = Mapping[str, str | bytes] | Iterable[tuple[str, str | bytes]]


# --- building Envoy's messages -----------------------------------------------------------

def header_map(headers: Headers) -> HeaderMap:
    items = headers.items() if isinstance(headers, Mapping) else headers
    return HeaderMap(headers=[
        HeaderValue(key=k, raw_value=v if isinstance(v, bytes) else v.encode())
        for k, v in items])


def request_headers(headers: Headers | None = None, *, req_mode: int = P.NONE,
                    resp_mode: int = P.NONE, eos: bool = False,
                    path: str = "/v1/chat/completions") -> pb.ProcessingRequest:
    """The first message of a stream: request headers plus the protocol config."""
    base: dict[str, str | bytes] = {
        ":method": "POST", ":path": path, ":authority": "gw.test",
        ":scheme": "http", "content-type": "application/json", "x-request-id": "rid-1"}
    items = list(base.items()) + list(
        (headers.items() if isinstance(headers, Mapping) else headers) if headers else [])
    return pb.ProcessingRequest(
        request_headers=pb.HttpHeaders(headers=header_map(items), end_of_stream=eos),
        protocol_config=pb.ProtocolConfiguration(request_body_mode=req_mode,
                                                 response_body_mode=resp_mode))


def response_headers(status: int | str = 200, eos: bool = False,
                     **extra: str) -> pb.ProcessingRequest:
    items = {":status": str(status), "content-type": "text/plain", **extra}
    return pb.ProcessingRequest(
        response_headers=pb.HttpHeaders(headers=header_map(items), end_of_stream=eos))


def request_body(data: bytes, eos: bool) -> pb.ProcessingRequest:
    return pb.ProcessingRequest(request_body=pb.HttpBody(body=data, end_of_stream=eos))


def response_body(data: bytes, eos: bool) -> pb.ProcessingRequest:
    return pb.ProcessingRequest(response_body=pb.HttpBody(body=data, end_of_stream=eos))


REQUEST_TRAILERS = pb.ProcessingRequest(request_trailers=pb.HttpTrailers())
RESPONSE_TRAILERS = pb.ProcessingRequest(response_trailers=pb.HttpTrailers())


# --- reading our replies -----------------------------------------------------------------

def header_values(msg: Message) -> Iterator[HeaderValue]:
    """Every HeaderValue anywhere inside a message."""
    for field, value in msg.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            items = list(value.values())
        else:
            items = value if field.is_repeated else [value]
        for item in items:
            if not isinstance(item, Message):
                continue  # map<string, scalar>
            if isinstance(item, HeaderValue):
                yield item
            else:
                yield from header_values(item)


async def send(ex: Exchange, msg: pb.ProcessingRequest) -> list[pb.ProcessingResponse]:
    """Feed one message the way the servicer does (a response body to `response_chunk`
    first, `handle` when that declines); parse the replies and check rules that hold for
    every reply."""
    replies = ex.response_chunk(msg.response_body) \
        if msg.WhichOneof("request") == "response_body" else None
    if replies is None:
        replies = await ex.handle(msg)
    out = []
    for reply in replies:
        assert isinstance(reply, bytes | pb.ProcessingResponse), type(reply)
        parsed = pb.ProcessingResponse.FromString(reply) if isinstance(reply, bytes) else reply
        assert parsed.WhichOneof("response") is not None
        for h in header_values(parsed):  # headers are written to raw_value only
            assert h.value == "", h
        if parsed.HasField("mode_override"):
            assert parsed.WhichOneof("response") in ("request_headers", "response_headers")
        out.append(parsed)
    return out


async def one(ex: Exchange, msg: pb.ProcessingRequest, kind: str | None = None
              ) -> pb.ProcessingResponse:
    """Exactly one reply, of the matching type (the rule outside FULL_DUPLEX_STREAMED)."""
    replies = await send(ex, msg)
    assert len(replies) == 1, replies
    expected = kind or msg.WhichOneof("request")
    assert replies[0].WhichOneof("response") == expected, replies[0]
    return replies[0]


def is_continue(reply: pb.ProcessingResponse) -> bool:
    """A pass-through reply: the matching type with nothing in it."""
    kind = reply.WhichOneof("response")
    return (kind != "immediate_response" and getattr(reply, kind).ListFields() == []
            and not reply.HasField("mode_override") and not reply.HasField("dynamic_metadata"))


def replacement(reply: pb.ProcessingResponse) -> bytes | None:
    """The body of a BUFFERED/STREAMED body reply; None when the chunk passes unchanged."""
    kind = reply.WhichOneof("response")
    assert kind in ("request_body", "response_body"), reply
    mutation = getattr(reply, kind).response.body_mutation
    which = mutation.WhichOneof("mutation")
    assert which in (None, "body"), reply  # streamed_response would be spurious here
    return mutation.body if which == "body" else None


def streamed(reply: pb.ProcessingResponse, kind: str) -> tuple[bytes, bool]:
    """(body, end_of_stream) of a FULL_DUPLEX_STREAMED body reply."""
    assert reply.WhichOneof("response") == kind, reply
    mutation = getattr(reply, kind).response.body_mutation
    assert mutation.WhichOneof("mutation") == "streamed_response", reply
    return mutation.streamed_response.body, mutation.streamed_response.end_of_stream


def set_headers(mutation: pb.HeaderMutation) -> dict[str, bytes]:
    return {o.header.key: o.header.raw_value for o in mutation.set_headers}


def override_of(reply: pb.ProcessingResponse) -> tuple[int, int] | None:
    if not reply.HasField("mode_override"):
        return None
    mo = reply.mode_override
    return mo.request_body_mode, mo.response_body_mode


def immediate(reply: pb.ProcessingResponse) -> tuple[int, dict, dict[str, bytes], str]:
    """(status, JSON body, headers, details) of an ImmediateResponse."""
    assert reply.WhichOneof("response") == "immediate_response", reply
    ir = reply.immediate_response
    return ir.status.code, json.loads(ir.body), set_headers(ir.headers), ir.details


# --- routes ------------------------------------------------------------------------------

ENDPOINTS = {"openai": "/v1/chat/completions",
             "azure": "/openai/deployments/d/chat/completions?api-version=2024-10-21",
             "anthropic": "/v1/messages",
             "gemini": "/v1beta/models/gemini-2.5-flash:generateContent",
             "vertex": "/v1/projects/p/locations/l/publishers/google/models/m:generateContent"}


def plain_route(*policies: Policy, provider: str = "openai") -> RouteConfig:
    return RouteConfig("plain", provider, tuple(policies))


def transform_route(provider: str = "openai", user: str = "u") -> RouteConfig:
    return RouteConfig("transform", provider, (TagRequest({"user": user}), UpperResponse()))


def tagged(body: bytes, user: str = "u") -> bytes:
    doc = json.loads(body)
    doc["user"] = user
    return json.dumps(doc).encode()


def json_body(size: int) -> bytes:
    """A JSON object of exactly `size` bytes (size >= 9)."""
    body = b'{"p": "' + b"x" * (size - 9) + b'"}'
    assert len(body) == size
    return body


REQUEST = b'{"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}'
REQUEST_CHUNKS = (REQUEST[:10], REQUEST[10:11], REQUEST[11:40], REQUEST[40:])


class Recorder(Policy):
    """Remembers the request headers it saw."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.seen: list[dict[str, str]] = []
        self.ids: list[str] = []

    async def on_request_headers(self, ex: Exchange) -> None:
        self.seen.append(dict(ex.request_headers))
        self.ids.append(ex.request_id)


class Rejecter(Policy):
    def __init__(self, reject: Reject) -> None:
        super().__init__()
        self.reject = reject

    async def on_request_headers(self, ex: Exchange) -> None:
        raise self.reject


# === headers-only routes: CONTINUE and mode_override =====================================

async def test_no_body_modes_gives_continue_constants() -> None:
    ex = Exchange(plain_route(), "plain")
    assert await ex.handle(request_headers()) == (P.CONTINUE_REQUEST_HEADERS,)
    assert await ex.handle(response_headers()) == (P.CONTINUE_RESPONSE_HEADERS,)
    assert not ex.done


@pytest.mark.parametrize("req_mode", [P.NONE, *BODY_MODES])
@pytest.mark.parametrize("resp_mode", [P.NONE, *BODY_MODES])
async def test_mode_override_turns_both_body_modes_off(req_mode: int, resp_mode: int) -> None:
    ex = Exchange(plain_route(Gatekeeper()), "plain")
    reply = await one(ex, request_headers(req_mode=req_mode, resp_mode=resp_mode))
    if (req_mode, resp_mode) == (P.NONE, P.NONE):
        assert override_of(reply) is None
    else:
        assert override_of(reply) == (P.NONE, P.NONE)
    # and nothing to override again on the response side
    reply = await one(ex, response_headers())
    assert override_of(reply) is None


async def test_mode_override_without_header_mutation() -> None:
    ex = Exchange(plain_route(), "plain")
    reply = await one(ex, request_headers(req_mode=P.BUFFERED, resp_mode=P.STREAMED))
    assert override_of(reply) == (P.NONE, P.NONE)
    assert not reply.request_headers.HasField("response")
    assert await ex.handle(response_headers()) == (P.CONTINUE_RESPONSE_HEADERS,)


@pytest.mark.parametrize(("req_mode", "resp_mode"), [
    (P.FULL_DUPLEX, P.FULL_DUPLEX), (P.FULL_DUPLEX, P.NONE), (P.FULL_DUPLEX, P.STREAMED),
    (P.BUFFERED, P.FULL_DUPLEX), (P.NONE, P.FULL_DUPLEX)])
async def test_no_mode_override_in_full_duplex(req_mode: int, resp_mode: int) -> None:
    ex = Exchange(plain_route(), "plain")
    assert await ex.handle(request_headers(req_mode=req_mode, resp_mode=resp_mode)) == (
        P.CONTINUE_REQUEST_HEADERS,)
    assert await ex.handle(response_headers()) == (P.CONTINUE_RESPONSE_HEADERS,)


async def test_full_duplex_without_body_policy_passes_bodies_through() -> None:
    ex = Exchange(plain_route(), "plain")
    await send(ex, request_headers(req_mode=P.FULL_DUPLEX, resp_mode=P.FULL_DUPLEX))
    for i, chunk in enumerate([b"ab", b"", b"cd"]):
        eos = i == 2
        (reply,) = await send(ex, request_body(chunk, eos))
        assert streamed(reply, "request_body") == (chunk, eos)
    await send(ex, response_headers())
    (reply,) = await send(ex, response_body(b"xyz", False))
    assert streamed(reply, "response_body") == (b"xyz", False)
    # the body ends with trailers: we close our side of it, then answer the trailers
    body_end, trailers = await send(ex, RESPONSE_TRAILERS)
    assert streamed(body_end, "response_body") == (b"", True)
    assert trailers.WhichOneof("response") == "response_trailers" and is_continue(trailers)


async def test_full_duplex_request_trailers_without_body_policy() -> None:
    ex = Exchange(plain_route(), "plain")
    await send(ex, request_headers(req_mode=P.FULL_DUPLEX, resp_mode=P.FULL_DUPLEX))
    (reply,) = await send(ex, request_body(b"abc", False))
    assert streamed(reply, "request_body") == (b"abc", False)
    body_end, trailers = await send(ex, REQUEST_TRAILERS)
    assert streamed(body_end, "request_body") == (b"", True)
    assert trailers.WhichOneof("response") == "request_trailers" and is_continue(trailers)


@pytest.mark.parametrize("mode", BODY_MODES)
async def test_body_messages_of_a_headers_only_route_continue(mode: int) -> None:
    """If Envoy sends a body anyway (override not allowed), it is passed through."""
    ex = Exchange(plain_route(Gatekeeper()), "plain")
    await send(ex, request_headers(req_mode=mode, resp_mode=mode))
    assert await ex.handle(request_body(b"abc", True)) == (P.CONTINUE_REQUEST_BODY,)
    await send(ex, response_headers())
    assert await ex.handle(response_body(b"abc", True)) == (P.CONTINUE_RESPONSE_BODY,)
    assert await ex.handle(REQUEST_TRAILERS) == (P.CONTINUE_REQUEST_TRAILERS,)
    assert await ex.handle(RESPONSE_TRAILERS) == (P.CONTINUE_RESPONSE_TRAILERS,)


async def test_body_route_with_matching_modes_needs_no_override() -> None:
    ex = Exchange(transform_route(), "transform")
    assert await ex.handle(request_headers(req_mode=P.BUFFERED, resp_mode=P.STREAMED)) == (
        P.CONTINUE_REQUEST_HEADERS,)


async def test_body_route_asks_for_bodies_envoy_was_not_configured_to_send() -> None:
    ex = Exchange(transform_route(), "transform")
    reply = await one(ex, request_headers(req_mode=P.NONE, resp_mode=P.NONE))
    assert override_of(reply) == (P.BUFFERED, P.STREAMED)


async def test_request_without_body_turns_request_body_off() -> None:
    ex = Exchange(transform_route(), "transform")
    reply = await one(ex, request_headers(req_mode=P.BUFFERED, resp_mode=P.STREAMED, eos=True))
    assert override_of(reply) == (P.NONE, P.STREAMED)


@pytest.mark.parametrize(("policy", "expected"), [
    (TagRequest(), (P.BUFFERED, P.NONE)),
    (UpperResponse(), (P.NONE, P.STREAMED)),
])
async def test_override_keeps_only_the_body_a_policy_needs(policy: Policy,
                                                           expected: tuple[int, int]) -> None:
    ex = Exchange(plain_route(policy), "plain")
    reply = await one(ex, request_headers(req_mode=P.BUFFERED, resp_mode=P.STREAMED))
    assert override_of(reply) == expected


async def test_response_body_turned_off_when_no_transform_applies() -> None:
    """UpperResponse transforms only 200s: on a 500 the response body is not wanted."""
    ex = Exchange(transform_route(), "transform")
    await send(ex, request_headers(req_mode=P.STREAMED, resp_mode=P.STREAMED))
    await send(ex, request_body(REQUEST, True))
    reply = await one(ex, response_headers(500))
    assert override_of(reply) == (P.STREAMED, P.NONE)


async def test_no_response_override_in_full_duplex_when_no_transform_applies() -> None:
    ex = Exchange(transform_route(), "transform")
    await send(ex, request_headers(req_mode=P.FULL_DUPLEX, resp_mode=P.FULL_DUPLEX))
    await send(ex, request_body(REQUEST, True))
    assert await ex.handle(response_headers(500)) == (P.CONTINUE_RESPONSE_HEADERS,)
    (reply,) = await send(ex, response_body(b"error", True))
    assert streamed(reply, "response_body") == (b"error", True)


async def test_response_without_body_gets_no_transform() -> None:
    ex = Exchange(transform_route(), "transform")
    await send(ex, request_headers(req_mode=P.BUFFERED, resp_mode=P.STREAMED, eos=True))
    reply = await one(ex, response_headers(200, eos=True))
    assert override_of(reply) == (P.NONE, P.NONE)


# === headers: read from raw_value, written to raw_value, sanitised ========================

async def test_request_headers_are_read_from_raw_value() -> None:
    rec = Recorder()
    ex = Exchange(plain_route(rec), "plain")
    await send(ex, request_headers([("x-multi", b"a"), ("x-multi", b"b"),
                                    ("x-api-key", b"k-123")]))
    (seen,) = rec.seen
    assert seen[":path"] == "/v1/chat/completions"
    assert seen[":method"] == "POST"
    assert seen["x-multi"] == "a,b"
    assert seen["x-api-key"] == "k-123"
    assert rec.ids == ["rid-1"]
    assert ex.request_id == "rid-1"


async def test_response_status_is_read() -> None:
    ex = Exchange(plain_route(Gatekeeper()), "plain")
    await send(ex, request_headers())
    reply = await one(ex, response_headers(404, **{"x-upstream": "yes"}))
    assert ex.status == 404
    assert ex.response_headers["x-upstream"] == "yes"
    assert set_headers(reply.response_headers.response.header_mutation) == {
        "x-gateway-saw-status": b"404"}


async def test_bad_response_status_reads_as_zero() -> None:
    ex = Exchange(plain_route(), "plain")
    await send(ex, request_headers())
    await send(ex, response_headers("abc"))
    assert ex.status == 0


async def test_header_mutations_are_raw_and_sanitised() -> None:
    ex = Exchange(plain_route(Gatekeeper()), "plain")
    reply = await one(ex, request_headers(req_mode=P.BUFFERED, resp_mode=P.STREAMED))
    mutation = reply.request_headers.response.header_mutation
    assert set_headers(mutation) == {"x-gateway-route": b"plain",
                                     "x-gateway-sanitised": b"a  b c"}
    assert all(o.header.value == "" for o in mutation.set_headers)
    assert list(mutation.remove_headers) == ["x-test-remove-me"]


async def test_header_names_are_lower_cased_and_mutations_not_repeated() -> None:
    class SetMixedCase(Policy):
        async def on_request_headers(self, ex: Exchange) -> None:
            ex.set_request_header("X-Mixed-Case", "1")
            ex.remove_request_header("X-Old")

    ex = Exchange(plain_route(SetMixedCase()), "plain")
    reply = await one(ex, request_headers())
    mutation = reply.request_headers.response.header_mutation
    assert set_headers(mutation) == {"x-mixed-case": b"1"}
    assert list(mutation.remove_headers) == ["x-old"]
    # the request's mutations do not leak into the response headers reply
    assert await ex.handle(response_headers()) == (P.CONTINUE_RESPONSE_HEADERS,)


async def test_response_header_decided_at_request_time_goes_on_the_response() -> None:
    class Decide(Policy):
        async def on_request_headers(self, ex: Exchange) -> None:
            ex.set_request_header("x-up", "1")
            ex.set_response_header("x-down", "2")

    ex = Exchange(plain_route(Decide()), "plain")
    reply = await one(ex, request_headers())
    assert set_headers(reply.request_headers.response.header_mutation) == {"x-up": b"1"}
    reply = await one(ex, response_headers())
    assert set_headers(reply.response_headers.response.header_mutation) == {"x-down": b"2"}


async def test_header_value_round_trips_byte_for_byte() -> None:
    class CopyHeader(Policy):
        async def on_request_headers(self, ex: Exchange) -> None:
            ex.set_request_header("x-copy", ex.request_headers["x-name"])

    ex = Exchange(plain_route(CopyHeader()), "plain")
    reply = await one(ex, request_headers({"x-name": b"caf\xc3\xa9"}))
    assert set_headers(reply.request_headers.response.header_mutation)["x-copy"] == (
        b"caf\xc3\xa9")


async def test_dynamic_metadata_is_attached_once() -> None:
    class Tag(Policy):
        async def on_request_headers(self, ex: Exchange) -> None:
            ex.metadata["route"] = ex.route_name

    ex = Exchange(plain_route(Tag()), "plain")
    reply = await one(ex, request_headers())
    md = reply.dynamic_metadata.fields[P.METADATA_NAMESPACE].struct_value
    assert md.fields["route"].string_value == "plain"
    assert await ex.handle(response_headers()) == (P.CONTINUE_RESPONSE_HEADERS,)


# === body policies: BUFFERED ==============================================================

async def test_buffered_rewrites_both_bodies() -> None:
    ex = Exchange(transform_route(), "transform")
    await send(ex, request_headers(req_mode=P.BUFFERED, resp_mode=P.BUFFERED))

    reply = await one(ex, request_body(REQUEST, True))
    assert replacement(reply) == tagged(REQUEST)
    assert set_headers(reply.request_body.response.header_mutation) == {
        "content-length": str(len(tagged(REQUEST))).encode()}
    assert ex.request_body_bytes == len(REQUEST)

    assert await ex.handle(response_headers()) == (P.CONTINUE_RESPONSE_HEADERS,)
    reply = await one(ex, response_body(b"hello, world!", True))
    assert replacement(reply) == b"HELLO, WORLD!"
    assert set_headers(reply.response_body.response.header_mutation) == {
        "content-length": b"13"}
    assert ex.response_body_bytes == 13
    assert not ex.done


async def test_buffered_unchanged_request_body_continues() -> None:
    class Reader(Policy):
        needs_request_body = True

        async def on_request_body(self, ex: Exchange, body: bytes) -> bytes | None:
            return None

    ex = Exchange(plain_route(Reader()), "plain")
    await send(ex, request_headers(req_mode=P.BUFFERED))
    assert await ex.handle(request_body(REQUEST, True)) == (P.CONTINUE_REQUEST_BODY,)


async def test_buffered_request_body_before_trailers_is_whole() -> None:
    """BUFFERED: end_of_stream is false when trailers follow, but the body is complete."""
    ex = Exchange(transform_route(), "transform")
    await send(ex, request_headers(req_mode=P.BUFFERED, resp_mode=P.BUFFERED))
    reply = await one(ex, request_body(REQUEST, False))
    assert replacement(reply) == tagged(REQUEST)
    assert await ex.handle(REQUEST_TRAILERS) == (P.CONTINUE_REQUEST_TRAILERS,)


async def test_buffered_response_body_before_trailers_is_whole() -> None:
    ex = Exchange(transform_route(), "transform")
    await send(ex, request_headers(req_mode=P.BUFFERED, resp_mode=P.BUFFERED))
    await send(ex, request_body(REQUEST, True))
    await send(ex, response_headers())
    reply = await one(ex, response_body(b"hello", False))
    assert replacement(reply) == b"HELLO"
    assert set_headers(reply.response_body.response.header_mutation) == {
        "content-length": b"5"}


# === body policies: STREAMED ==============================================================

async def test_streamed_request_is_held_and_released_at_the_end() -> None:
    ex = Exchange(transform_route(user="bob"), "transform")
    await send(ex, request_headers(req_mode=P.STREAMED, resp_mode=P.STREAMED))
    replies = []
    for i, chunk in enumerate(REQUEST_CHUNKS):
        replies.append(await one(ex, request_body(chunk, i == len(REQUEST_CHUNKS) - 1)))
    assert [replacement(r) for r in replies[:-1]] == [b""] * (len(REQUEST_CHUNKS) - 1)
    assert replacement(replies[-1]) == tagged(REQUEST, "bob")
    # Envoy removes content-length itself in STREAMED: we do not set it
    assert not replies[-1].request_body.response.HasField("header_mutation")
    assert ex.request_body_bytes == len(REQUEST)


async def test_streamed_request_unchanged_is_still_released_whole() -> None:
    """The held chunks were replaced by empty bodies, so the last reply carries them all."""
    class Reader(Policy):
        needs_request_body = True

        async def on_request_body(self, ex: Exchange, body: bytes) -> bytes | None:
            return None

    ex = Exchange(plain_route(Reader()), "plain")
    await send(ex, request_headers(req_mode=P.STREAMED))
    assert replacement(await one(ex, request_body(b"abc", False))) == b""
    assert replacement(await one(ex, request_body(b"def", True))) == b"abcdef"


async def test_streamed_request_in_one_chunk() -> None:
    ex = Exchange(transform_route(), "transform")
    await send(ex, request_headers(req_mode=P.STREAMED, resp_mode=P.STREAMED))
    assert replacement(await one(ex, request_body(REQUEST, True))) == tagged(REQUEST)


async def test_streamed_request_ending_with_an_empty_chunk() -> None:
    ex = Exchange(transform_route(), "transform")
    await send(ex, request_headers(req_mode=P.STREAMED, resp_mode=P.STREAMED))
    assert replacement(await one(ex, request_body(REQUEST, False))) == b""
    assert replacement(await one(ex, request_body(b"", True))) == tagged(REQUEST)


async def test_streamed_response_is_upper_cased_holding_one_byte() -> None:
    ex = Exchange(transform_route(), "transform")
    await send(ex, request_headers(req_mode=P.STREAMED, resp_mode=P.STREAMED))
    await send(ex, request_body(REQUEST, True))
    assert await ex.handle(response_headers()) == (P.CONTINUE_RESPONSE_HEADERS,)
    chunks = [b"hel", b"lo ", b"world"]
    out = []
    for i, chunk in enumerate(chunks):
        reply = await one(ex, response_body(chunk, i == len(chunks) - 1))
        assert not reply.response_body.response.HasField("header_mutation")
        out.append(replacement(reply))
    assert out == [b"HE", b"LLO", b" WORLD"]


async def test_streamed_response_held_byte_released_by_an_empty_last_chunk() -> None:
    ex = Exchange(transform_route(), "transform")
    await send(ex, request_headers(req_mode=P.STREAMED, resp_mode=P.STREAMED))
    await send(ex, request_body(REQUEST, True))
    await send(ex, response_headers())
    assert replacement(await one(ex, response_body(b"a", False))) == b""
    assert replacement(await one(ex, response_body(b"", False))) in (None, b"")
    assert replacement(await one(ex, response_body(b"", True))) == b"A"


async def test_streamed_response_chunk_already_upper_case_may_continue() -> None:
    ex = Exchange(transform_route(), "transform")
    await send(ex, request_headers(req_mode=P.STREAMED, resp_mode=P.STREAMED))
    await send(ex, request_body(REQUEST, True))
    await send(ex, response_headers())
    assert replacement(await one(ex, response_body(b"AB", False))) == b"A"
    # held "B" + "B" -> releases "B", holds "B": same bytes as the chunk, so pass it through
    assert await ex.handle(response_body(b"B", False)) == (P.CONTINUE_RESPONSE_BODY,)
    assert replacement(await one(ex, response_body(b"", True))) == b"B"


# === body policies: FULL_DUPLEX_STREAMED ==================================================

async def full_duplex(ex: Exchange, msg: pb.ProcessingRequest, kind: str
                      ) -> list[tuple[bytes, bool]]:
    """Body replies in FULL_DUPLEX_STREAMED: only streamed_response, of the right direction."""
    return [streamed(r, kind) for r in await send(ex, msg)]


async def test_full_duplex_request_is_n_to_m() -> None:
    """Nothing for the headers and the held chunks; the headers' reply (held for the body's
    verdict: Envoy sends nothing upstream until it comes) leads the body's last reply."""
    ex = Exchange(transform_route(), "transform")
    assert await ex.handle(request_headers(req_mode=P.FULL_DUPLEX,
                                           resp_mode=P.FULL_DUPLEX)) == ()
    for chunk in REQUEST_CHUNKS[:-1]:
        assert await ex.handle(request_body(chunk, False)) == ()   # held
    head, last = await send(ex, request_body(REQUEST_CHUNKS[-1], True))
    assert head.WhichOneof("response") == "request_headers" and is_continue(head)
    assert streamed(last, "request_body") == (tagged(REQUEST), True)


async def test_full_duplex_request_ending_with_trailers() -> None:
    ex = Exchange(transform_route(), "transform")
    assert await ex.handle(request_headers(req_mode=P.FULL_DUPLEX,
                                           resp_mode=P.FULL_DUPLEX)) == ()
    for chunk in REQUEST_CHUNKS:
        assert await ex.handle(request_body(chunk, False)) == ()
    head, body_end, trailers = await send(ex, REQUEST_TRAILERS)
    assert head.WhichOneof("response") == "request_headers"
    assert streamed(body_end, "request_body") == (tagged(REQUEST), True)
    assert trailers.WhichOneof("response") == "request_trailers" and is_continue(trailers)


async def test_full_duplex_headers_reply_carries_what_the_body_policies_set() -> None:
    """A header a policy sets while reading the body (the unified front's path, backend and
    credential) goes in the held headers reply: in FULL_DUPLEX_STREAMED a body reply
    carries no header mutation, and such a header was lost."""
    class SetsOnBody(Policy):
        name = "sets-on-body"
        needs_request_body = True

        async def on_request_headers(self, ex: Exchange) -> None:
            ex.set_request_header("x-from-headers", "1")

        async def on_request_body(self, ex: Exchange, body: bytes) -> bytes | None:
            ex.set_request_header(":path", "/v1/elsewhere")
            ex.clear_route_cache = True
            ex.metadata["picked"] = "b"
            return None

    ex = Exchange(plain_route(SetsOnBody({})), "plain")
    assert await ex.handle(request_headers(req_mode=P.FULL_DUPLEX,
                                           resp_mode=P.FULL_DUPLEX)) == ()
    head, last = await send(ex, request_body(REQUEST, True))
    common = head.request_headers.response
    assert set_headers(common.header_mutation) == {"x-from-headers": b"1",
                                                   ":path": b"/v1/elsewhere"}
    assert common.clear_route_cache
    assert head.dynamic_metadata.fields["extproc"].struct_value.fields["picked"] \
        .string_value == "b"
    assert streamed(last, "request_body") == (REQUEST, True)


async def test_full_duplex_body_refused_before_the_headers_go_upstream() -> None:
    """A body a policy refuses is answered before any headers reply: Envoy never sends the
    request (nor the key the gateway injects) upstream."""
    class KeyThenRefuse(Policy):
        name = "key-then-refuse"
        needs_request_body = True

        async def on_request_headers(self, ex: Exchange) -> None:
            ex.set_request_header("authorization", "Bearer sk-provider")

        async def on_request_body(self, ex: Exchange, body: bytes) -> bytes | None:
            raise Reject(400, "no")

    ex = Exchange(plain_route(KeyThenRefuse({})), "plain")
    assert await ex.handle(request_headers(req_mode=P.FULL_DUPLEX,
                                           resp_mode=P.FULL_DUPLEX)) == ()
    assert await ex.handle(request_body(REQUEST[:5], False)) == ()
    (reply,) = await send(ex, request_body(REQUEST[5:], True))
    status, _, _, _ = immediate(reply)
    assert status == 400 and ex.done
    assert b"sk-provider" not in reply.SerializeToString()


class LongHeaderOnBody(Policy):
    """Sets a 3,000-byte request header while reading the body."""

    name = "long-header-on-body"
    needs_request_body = True

    async def on_request_body(self, ex: Exchange, body: bytes) -> bytes | None:
        ex.set_request_header("x-long", "v" * 3000)
        return None


async def test_full_duplex_held_headers_reply_is_checked_against_header_limits() -> None:
    """The held reply, with what the body's policies set, meets Envoy's header limits as
    every request headers reply does: past them, the 431 replaces it and the body."""
    limits = headerlimits.HeaderLimits(max_bytes=2048, max_count=100)
    ex = Exchange(plain_route(LongHeaderOnBody({})), "plain", header_limits=limits)
    assert await ex.handle(request_headers(req_mode=P.FULL_DUPLEX,
                                           resp_mode=P.FULL_DUPLEX)) == ()
    (reply,) = await send(ex, request_body(REQUEST, True))
    status, _, _, details = immediate(reply)
    assert (status, details) == (431, headerlimits.DETAILS) and ex.done
    ex = Exchange(plain_route(LongHeaderOnBody({})), "plain",
                  header_limits=headerlimits.HeaderLimits(max_bytes=8192, max_count=100))
    await send(ex, request_headers(req_mode=P.FULL_DUPLEX, resp_mode=P.FULL_DUPLEX))
    head, _ = await send(ex, request_body(REQUEST, True))
    assert set_headers(head.request_headers.response.header_mutation)["x-long"] == b"v" * 3000


async def test_full_duplex_held_headers_refused_on_the_trailers_path_end_there() -> None:
    """A body ending with trailers whose held headers reply is refused (the 431) gets that
    refusal alone: no trailers reply after it."""
    ex = Exchange(plain_route(LongHeaderOnBody({})), "plain",
                  header_limits=headerlimits.HeaderLimits(max_bytes=2048, max_count=100))
    await send(ex, request_headers(req_mode=P.FULL_DUPLEX, resp_mode=P.FULL_DUPLEX))
    assert await ex.handle(request_body(REQUEST, False)) == ()
    (reply,) = await send(ex, REQUEST_TRAILERS)
    assert immediate(reply)[0] == 431 and ex.done


@pytest.mark.parametrize(("status", "refused"), [(408, False), (413, False), (200, True)])
async def test_envoy_answering_while_the_headers_are_held(status: int, refused: bool) -> None:
    """Envoy's own answer (a timeout, say) while the request's headers wait for the body's
    verdict: nothing went upstream, so it is Envoy's local reply, passed on; the request's
    pending changes and its held reply are dropped (a body end after it sends none). A
    success there would be a reply to a request no policy let through: refused."""
    route = RouteConfig("transform", "openai", (Gatekeeper({}), TagRequest({"user": "u"})))
    ex = Exchange(route, "transform")
    await send(ex, request_headers(req_mode=P.FULL_DUPLEX, resp_mode=P.FULL_DUPLEX))
    assert await ex.handle(request_body(REQUEST[:9], False)) == ()
    (reply,) = await send(ex, response_headers(status))
    if refused:
        assert immediate(reply)[0] == 502
        return
    assert reply.WhichOneof("response") == "response_headers"
    assert ex.state.get("local_reply") is True
    assert not ex._req_set and not ex._req_remove   # the Gatekeeper's, never sent
    replies = await send(ex, request_body(REQUEST[9:], True))
    assert [r.WhichOneof("response") for r in replies] == ["request_body"]


async def test_full_duplex_headers_reply_is_not_held_without_a_body_policy() -> None:
    ex = Exchange(plain_route(), "plain")
    assert await ex.handle(request_headers(req_mode=P.FULL_DUPLEX,
                                           resp_mode=P.FULL_DUPLEX)) == (
        P.CONTINUE_REQUEST_HEADERS,)
    ex = Exchange(transform_route(), "transform")   # a body policy, but no body
    assert await ex.handle(request_headers(req_mode=P.FULL_DUPLEX, resp_mode=P.FULL_DUPLEX,
                                           eos=True)) == (P.CONTINUE_REQUEST_HEADERS,)


async def test_full_duplex_response_is_n_to_m() -> None:
    ex = Exchange(transform_route(), "transform")
    await send(ex, request_headers(req_mode=P.FULL_DUPLEX, resp_mode=P.FULL_DUPLEX))
    await send(ex, request_body(REQUEST, True))
    assert await ex.handle(response_headers()) == (P.CONTINUE_RESPONSE_HEADERS,)
    assert await full_duplex(ex, response_body(b"a", False), "response_body") == []
    assert await full_duplex(ex, response_body(b"", False), "response_body") == []
    assert await full_duplex(ex, response_body(b"b", False), "response_body") == [
        (b"A", False)]
    assert await full_duplex(ex, response_body(b"cd", True), "response_body") == [
        (b"BCD", True)]


async def test_full_duplex_response_empty_last_chunk_ends_the_stream() -> None:
    ex = Exchange(transform_route(), "transform")
    await send(ex, request_headers(req_mode=P.FULL_DUPLEX, resp_mode=P.FULL_DUPLEX))
    await send(ex, request_body(REQUEST, True))
    await send(ex, response_headers())
    assert await full_duplex(ex, response_body(b"xy", False), "response_body") == [
        (b"X", False)]
    assert await full_duplex(ex, response_body(b"", True), "response_body") == [(b"Y", True)]


async def test_full_duplex_response_ending_with_trailers() -> None:
    ex = Exchange(transform_route(), "transform")
    await send(ex, request_headers(req_mode=P.FULL_DUPLEX, resp_mode=P.FULL_DUPLEX))
    await send(ex, request_body(REQUEST, True))
    await send(ex, response_headers())
    assert await full_duplex(ex, response_body(b"xyz", False), "response_body") == [
        (b"XY", False)]
    body_end, trailers = await send(ex, RESPONSE_TRAILERS)
    assert streamed(body_end, "response_body") == (b"Z", True)
    assert trailers.WhichOneof("response") == "response_trailers" and is_continue(trailers)


async def test_full_duplex_error_response_passes_through() -> None:
    ex = Exchange(transform_route(), "transform")
    await send(ex, request_headers(req_mode=P.FULL_DUPLEX, resp_mode=P.FULL_DUPLEX))
    await send(ex, request_body(REQUEST, True))
    await send(ex, response_headers(503))
    assert await full_duplex(ex, response_body(b"down", False), "response_body") == [
        (b"down", False)]
    body_end, _ = await send(ex, RESPONSE_TRAILERS)
    assert streamed(body_end, "response_body") == (b"", True)


# === rejections and failures ==============================================================

@pytest.mark.parametrize(("provider", "expected"), [
    ("openai", {"error": {"message": "rejected by the test gatekeeper",
                          "type": "rate_limit_error", "param": None, "code": None}}),
    ("azure", {"error": {"message": "rejected by the test gatekeeper",
                         "type": "rate_limit_error", "param": None, "code": None}}),
    ("anthropic", {"type": "error", "error": {"type": "rate_limit_error",
                                              "message": "rejected by the test gatekeeper"}}),
    ("gemini", {"error": {"code": 429, "message": "rejected by the test gatekeeper",
                          "status": "RESOURCE_EXHAUSTED"}}),
    ("vertex", {"error": {"code": 429, "message": "rejected by the test gatekeeper",
                          "status": "RESOURCE_EXHAUSTED"}}),
])
async def test_reject_becomes_an_immediate_response(provider: str, expected: dict) -> None:
    ex = Exchange(plain_route(Gatekeeper(), provider=provider), "plain")
    reply = await one(ex, request_headers({"x-test-reject": "429"}, req_mode=P.BUFFERED,
                                          resp_mode=P.STREAMED, path=ENDPOINTS[provider]),
                      "immediate_response")
    status, body, headers, details = immediate(reply)
    assert status == 429
    assert body == expected
    assert headers == {"content-type": b"application/json", "x-test-rejected": b"yes"}
    assert details == "extproc_429"
    assert ex.done


async def test_reject_kind_details_and_headers() -> None:
    reject = Reject(403, "no entry", kind="policy_violation", details="blocked by policy",
                    headers={"x-reason": "bad\r\nvalue", "content-type": "application/json"})
    ex = Exchange(plain_route(Rejecter(reject)), "plain")
    status, body, headers, details = immediate(
        await one(ex, request_headers(), "immediate_response"))
    assert status == 403
    assert body["error"]["type"] == "policy_violation"
    assert body["error"]["message"] == "no entry"
    assert headers == {"content-type": b"application/json", "x-reason": b"bad  value"}
    assert details == "blocked_by_policy"


async def test_reject_in_a_body_policy() -> None:
    class BodyGuard(Policy):
        needs_request_body = True

        async def on_request_body(self, ex: Exchange, body: bytes) -> bytes | None:
            if b"forbidden" in body:
                raise Reject(400, "forbidden content")
            return None

    ex = Exchange(plain_route(BodyGuard(), provider="anthropic"), "plain")
    await send(ex, request_headers(req_mode=P.STREAMED))
    assert replacement(await one(ex, request_body(b"some forb", False))) == b""
    status, body, _, _ = immediate(
        await one(ex, request_body(b"idden text", True), "immediate_response"))
    assert status == 400
    assert body == {"type": "error", "error": {"type": "invalid_request_error",
                                               "message": "forbidden content"}}
    assert ex.done


async def test_exception_becomes_a_500_without_its_text(
        caplog: pytest.LogCaptureFixture) -> None:
    ex = Exchange(plain_route(Gatekeeper()), "plain")
    with caplog.at_level(logging.ERROR, logger="extproc.exchange"):
        reply = await one(ex, request_headers({"x-test-boom": "1"}), "immediate_response")
    status, body, headers, details = immediate(reply)
    assert status == 500
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == "server_error"
    assert b"SECRET" not in reply.immediate_response.body
    assert "SECRET" not in details
    assert all(b"SECRET" not in v for v in headers.values())
    assert headers["content-type"] == b"application/json"
    assert ex.done
    # ...but it is logged, with its traceback, for the operator
    assert any(r.exc_info and "SECRET-INTERNAL-DETAIL" in str(r.exc_info[1])
               for r in caplog.records)


async def test_exception_in_a_body_policy_becomes_a_500() -> None:
    ex = Exchange(transform_route(provider="gemini"), "transform")
    await send(ex, request_headers(req_mode=P.BUFFERED, resp_mode=P.STREAMED))
    reply = await one(ex, request_body(b"not json", True), "immediate_response")
    status, body, _, _ = immediate(reply)
    assert status == 500
    assert body["error"]["status"] == "INTERNAL"
    assert b"Expecting value" not in reply.immediate_response.body


async def test_unknown_route_gives_a_404_naming_it() -> None:
    """No route is a request the gateway cannot classify: a 404 in the gateway's own, neutral
    format (no provider is known), never a 500."""
    ex = Exchange(None, "no-such-route")
    assert ex.provider == "gateway"
    status, body, headers, details = immediate(
        await one(ex, request_headers(req_mode=P.BUFFERED, resp_mode=P.STREAMED),
                  "immediate_response"))
    assert status == 404
    assert body["error"]["type"] == "gateway_error"
    assert "no-such-route" in body["error"]["message"]
    assert headers["content-type"] == b"application/json"
    assert details == "extproc_unknown_route"
    assert ex.done


async def test_no_route_name_at_all_gives_a_404() -> None:
    ex = Exchange(None, None)
    status, body, _, _ = immediate(await one(ex, request_headers(), "immediate_response"))
    assert status == 404
    assert body["error"]["message"] == "no gateway route serves this request"


# === request body limit ===================================================================

LIMIT = 64


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
async def test_buffered_body_over_the_limit_is_413(provider: str) -> None:
    ex = Exchange(transform_route(provider=provider), "transform", max_request_body=LIMIT)
    await send(ex, request_headers(req_mode=P.BUFFERED, resp_mode=P.STREAMED))
    status, body, headers, details = immediate(
        await one(ex, request_body(json_body(LIMIT + 1), True), "immediate_response"))
    assert status == 413
    assert str(LIMIT) in json.dumps(body)
    assert headers["content-type"] == b"application/json"
    assert details == "extproc_body_too_large"
    assert ex.done


async def test_buffered_body_at_the_limit_is_accepted() -> None:
    ex = Exchange(transform_route(), "transform", max_request_body=LIMIT)
    await send(ex, request_headers(req_mode=P.BUFFERED, resp_mode=P.STREAMED))
    assert replacement(await one(ex, request_body(json_body(LIMIT), True))) == tagged(
        json_body(LIMIT))


async def test_streamed_body_over_the_limit_is_413_when_accumulated() -> None:
    ex = Exchange(transform_route(), "transform", max_request_body=LIMIT)
    await send(ex, request_headers(req_mode=P.STREAMED, resp_mode=P.STREAMED))
    body = json_body(LIMIT + 1)
    chunks = [body[:30], body[30:60], body[60:]]  # each far under the limit
    assert replacement(await one(ex, request_body(chunks[0], False))) == b""
    assert replacement(await one(ex, request_body(chunks[1], False))) == b""
    status, _, _, _ = immediate(
        await one(ex, request_body(chunks[2], True), "immediate_response"))
    assert status == 413
    assert ex.done


async def test_streamed_body_over_the_limit_is_413_before_the_end() -> None:
    ex = Exchange(transform_route(), "transform", max_request_body=LIMIT)
    await send(ex, request_headers(req_mode=P.STREAMED, resp_mode=P.STREAMED))
    assert replacement(await one(ex, request_body(b"x" * 40, False))) == b""
    status, _, _, _ = immediate(
        await one(ex, request_body(b"x" * 40, False), "immediate_response"))
    assert status == 413


async def test_streamed_body_at_the_limit_is_accepted() -> None:
    ex = Exchange(transform_route(), "transform", max_request_body=LIMIT)
    await send(ex, request_headers(req_mode=P.STREAMED, resp_mode=P.STREAMED))
    body = json_body(LIMIT)
    assert replacement(await one(ex, request_body(body[:32], False))) == b""
    assert replacement(await one(ex, request_body(body[32:], True))) == tagged(body)


async def test_full_duplex_body_over_the_limit_is_413() -> None:
    ex = Exchange(transform_route(), "transform", max_request_body=LIMIT)
    await send(ex, request_headers(req_mode=P.FULL_DUPLEX, resp_mode=P.FULL_DUPLEX))
    assert await ex.handle(request_body(b"x" * 40, False)) == ()
    status, _, _, _ = immediate(
        await one(ex, request_body(b"x" * 40, True), "immediate_response"))
    assert status == 413


async def test_body_limit_does_not_apply_to_routes_that_do_not_read_it() -> None:
    ex = Exchange(plain_route(), "plain", max_request_body=LIMIT)
    await send(ex, request_headers(req_mode=P.FULL_DUPLEX, resp_mode=P.FULL_DUPLEX))
    (reply,) = await send(ex, request_body(b"x" * (LIMIT * 2), True))
    assert streamed(reply, "request_body") == (b"x" * (LIMIT * 2), True)


# === close ================================================================================

async def test_close_frees_held_buffers() -> None:
    ex = Exchange(transform_route(), "transform")
    await send(ex, request_headers(req_mode=P.STREAMED, resp_mode=P.STREAMED))
    await send(ex, request_body(REQUEST_CHUNKS[0], False))
    await send(ex, request_body(REQUEST_CHUNKS[1], False))
    assert ex._held and ex._held_size == len(REQUEST_CHUNKS[0]) + len(REQUEST_CHUNKS[1])
    ex.close()
    assert ex._held == [] and ex._held_size == 0
    assert ex.done


async def test_close_drops_response_transforms() -> None:
    ex = Exchange(transform_route(), "transform")
    await send(ex, request_headers(req_mode=P.STREAMED, resp_mode=P.STREAMED))
    await send(ex, request_body(REQUEST, True))
    await send(ex, response_headers())
    await send(ex, response_body(b"abc", False))
    assert ex._transforms
    ex.close()
    assert ex._transforms == []
    assert ex.done


async def test_close_after_a_413_frees_the_held_body() -> None:
    ex = Exchange(transform_route(), "transform", max_request_body=LIMIT)
    await send(ex, request_headers(req_mode=P.STREAMED, resp_mode=P.STREAMED))
    await send(ex, request_body(b"x" * 40, False))
    await send(ex, request_body(b"x" * 40, False))
    ex.close()
    assert ex._held == [] and ex._held_size == 0


async def test_messages_without_a_known_type_get_no_reply() -> None:
    ex = Exchange(plain_route(), "plain")
    await send(ex, request_headers())
    assert await ex.handle(pb.ProcessingRequest()) == ()


# === properties: response chunking never changes the released bytes ======================

def chunkings() -> st.SearchStrategy[list[bytes]]:
    """Chunk lists (with empty and 1-byte chunks) of mixed-case ASCII and other bytes."""
    piece = st.one_of(st.binary(max_size=6),
                      st.text(alphabet="abcXYZ \n{}", max_size=6).map(str.encode))
    return st.lists(piece, min_size=1, max_size=12)


ONE_BYTE = [bytes([c]) for c in b"hello World"]


async def run_streamed(chunks: Sequence[bytes]) -> tuple[bytes, int]:
    ex = Exchange(plain_route(UpperResponse()), "upper")
    await send(ex, request_headers(req_mode=P.STREAMED, resp_mode=P.STREAMED))
    await send(ex, response_headers())
    released, replies = b"", 0
    for i, chunk in enumerate(chunks):
        reply = await one(ex, response_body(chunk, i == len(chunks) - 1))
        replies += 1
        body = replacement(reply)
        released += chunk if body is None else body
    return released, replies


async def run_full_duplex(chunks: Sequence[bytes], trailers: bool
                          ) -> list[tuple[bytes, bool]]:
    ex = Exchange(plain_route(UpperResponse()), "upper")
    await send(ex, request_headers(req_mode=P.FULL_DUPLEX, resp_mode=P.FULL_DUPLEX))
    await send(ex, request_body(b"{}", True))
    await send(ex, response_headers())
    out: list[tuple[bytes, bool]] = []
    for i, chunk in enumerate(chunks):
        eos = i == len(chunks) - 1 and not trailers
        out += await full_duplex(ex, response_body(chunk, eos), "response_body")
    if trailers:
        *body_replies, last = await send(ex, RESPONSE_TRAILERS)
        assert last.WhichOneof("response") == "response_trailers"
        out += [streamed(r, "response_body") for r in body_replies]
    return out


@settings(max_examples=200, deadline=None)
@given(chunks=chunkings())
@example(chunks=ONE_BYTE)
@example(chunks=[b"", b"a", b"", b"", b"b", b""])
@example(chunks=[b""])
def test_streamed_response_chunking_is_invisible(chunks: list[bytes]) -> None:
    released, replies = asyncio.run(run_streamed(chunks))
    assert replies == len(chunks)  # exactly one reply per chunk
    assert released == b"".join(chunks).upper()


@settings(max_examples=200, deadline=None)
@given(chunks=chunkings(), trailers=st.booleans())
@example(chunks=ONE_BYTE, trailers=False)
@example(chunks=ONE_BYTE, trailers=True)
@example(chunks=[b"", b"a", b"", b"b", b""], trailers=False)
@example(chunks=[b""], trailers=True)
def test_full_duplex_response_chunking_is_invisible(chunks: list[bytes],
                                                    trailers: bool) -> None:
    out = asyncio.run(run_full_duplex(chunks, trailers))
    assert out, "the stream must be ended"
    assert [eos for _, eos in out] == [False] * (len(out) - 1) + [True]
    assert b"".join(body for body, _ in out) == b"".join(chunks).upper()
    assert len(out) <= len(chunks) + 1


# --- the synchronous chunk path the servicer takes ----------------------------------------

def _wire(replies: Sequence[Any]) -> list[bytes]:
    return [r if isinstance(r, bytes) else r.SerializeToString() for r in replies]


@pytest.mark.parametrize("mode", [P.STREAMED, P.BUFFERED, P.FULL_DUPLEX])
async def test_response_chunk_answers_as_handle_does(mode: int) -> None:
    """`response_chunk` (no coroutine) gives, chunk for chunk, what `handle` gives."""
    chunks = [b"hello ", b"", b"wor", b"ld"] if mode != P.BUFFERED else [b"hello world"]
    answers = []
    for sync in (False, True):
        ex = Exchange(plain_route(UpperResponse()), "upper")
        await send(ex, request_headers(req_mode=mode, resp_mode=mode))
        if mode == P.FULL_DUPLEX:
            await send(ex, request_body(b"{}", True))
        await send(ex, response_headers())
        got = []
        for i, chunk in enumerate(chunks):
            msg = response_body(chunk, i == len(chunks) - 1)
            replies = ex.response_chunk(msg.response_body) if sync else await ex.handle(msg)
            assert replies is not None
            got.append(_wire(replies))
        answers.append(got)
    assert answers[0] == answers[1]


class _CallsOut(Policy):
    needs_response_body = True

    def response_transform(self, ex: Exchange) -> Any:
        class Out(UpperResponse().response_transform(ex).__class__):  # type: ignore[misc]
            is_async = True
        return Out()


async def test_response_chunk_leaves_transforms_that_call_out_to_handle() -> None:
    ex = Exchange(plain_route(_CallsOut()), "out")
    await send(ex, request_headers(req_mode=P.STREAMED, resp_mode=P.STREAMED))
    await send(ex, response_headers())
    msg = response_body(b"abc", False)
    assert ex.response_chunk(msg.response_body) is None
    assert replacement(await one(ex, msg)) == b"AB"   # handle awaits it (one byte held)


class _BreaksMidStream(Policy):
    needs_response_body = True

    def response_transform(self, ex: Exchange) -> Any:
        class Broken(UpperResponse().response_transform(ex).__class__):  # type: ignore[misc]
            def feed(self, chunk: bytes) -> bytes:
                raise RuntimeError("SECRET-TRANSFORM-DETAIL")
        return Broken()


async def test_a_transform_failing_on_the_chunk_path_gives_a_clean_500(
        caplog: pytest.LogCaptureFixture) -> None:
    ex = Exchange(plain_route(_BreaksMidStream()), "broken")
    await send(ex, request_headers(req_mode=P.STREAMED, resp_mode=P.STREAMED))
    await send(ex, response_headers())
    with caplog.at_level(logging.ERROR, logger="extproc.exchange"):
        replies = ex.response_chunk(response_body(b"abc", False).response_body)
    assert replies is not None and len(replies) == 1
    reply = replies[0]
    assert isinstance(reply, pb.ProcessingResponse)
    status, body, _, details = immediate(reply)
    assert status == 500 and details == "extproc_internal_error"
    assert body["error"]["type"] == "server_error"
    assert b"SECRET" not in reply.immediate_response.body
    assert ex.done and ex.failed
    assert any(r.exc_info and "SECRET-TRANSFORM-DETAIL" in str(r.exc_info[1])
               for r in caplog.records)


@pytest.mark.parametrize("status", [200, 404])
async def test_a_lone_surrogate_in_a_model_or_an_upstream_error_never_escapes(
        status: int) -> None:
    """A JSON `\\ud800` escape in the client's model name, or in the message of an
    upstream's error event: never an exception out of the exchange (which failed the gRPC
    stream). The model name is one no provider serves: refused (400); the error's message is
    published (metadata, the access line) as its escape."""
    from extproc import loader
    route = loader.parse({"routes": [{"name": "r", "provider": "openai"}]}).routes["r"]
    ex = Exchange(route, "r")
    body = b'{"model":"gpt\\ud800","stream":true,"messages":[{"role":"user","content":"hi"}]}'
    await send(ex, request_headers(req_mode=P.BUFFERED, resp_mode=P.STREAMED))
    (refused,) = await send(ex, request_body(body, True))
    assert immediate(refused)[0] == 400 and not ex.failed
    ex = Exchange(route, "r")
    body = body.replace(b"gpt\\ud800", b"gpt-4o")
    await send(ex, request_headers(req_mode=P.BUFFERED, resp_mode=P.STREAMED))
    await send(ex, request_body(body, True))
    await send(ex, response_headers(status, **{"content-type": "text/event-stream"}))
    for i, chunk in enumerate([
            b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"hi"},'
            b'"finish_reason":null}],"usage":null}\n\n',
            b'data: {"error":{"message":"upstream failed \\ud800","type":"server_error"}}\n\n',
            b"data: [DONE]\n\n"]):
        replies = await send(ex, response_body(chunk, i == 2))
        assert len(replies) == 1    # every chunk answered
    assert ex.state["model"] == "gpt-4o"
