"""extproc.headerlimits: the header map Envoy will hold after the gateway's mutation is
counted exactly as Envoy counts it, the cheap pre-check never accepts what the exact count
refuses, and a reply that would not fit becomes a 431 in the route provider's format."""

from __future__ import annotations

import json

from envoy.config.core.v3.base_pb2 import HeaderMap, HeaderValue
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from hypothesis import given
from hypothesis import strategies as st

from extproc import headerlimits as hl
from extproc import loader
from extproc import protocol as P
from extproc.exchange import Exchange

NAMES = st.sampled_from(["a", "b", "x-c", "content-length", "authorization", ":path"])
HEADERS = st.lists(st.tuples(NAMES, st.binary(max_size=40) | st.text(max_size=20).map(
    str.encode)), max_size=30)
MUTATIONS = st.tuples(st.dictionaries(NAMES, st.text(max_size=40), max_size=4),
                      st.lists(NAMES, max_size=3))


def message(headers: list[tuple[str, bytes]]) -> pb.HttpHeaders:
    return pb.HttpHeaders(headers=HeaderMap(headers=[HeaderValue(key=k, raw_value=v)
                                                     for k, v in headers]))


def envoy_applies(headers: list[tuple[str, bytes]], sets: dict[str, str],
                  removes: list[str]) -> list[tuple[str, bytes]]:
    """Envoy's reading of a HeaderMutation: removals, then each set replaces its name."""
    out = [h for h in headers if h[0] not in removes]
    for k, v in sets.items():
        out = [h for h in out if h[0] != k] + [(k, v.encode())]
    return out


def size(headers: list[tuple[str, bytes]]) -> int:
    return sum(len(k) + len(v) for k, v in headers)


@given(HEADERS, MUTATIONS)
def test_the_projection_is_what_envoy_will_hold(headers: list[tuple[str, bytes]],
                                                mutation: tuple[dict[str, str], list[str]]
                                                ) -> None:
    sets, removes = mutation
    msg = message(headers)
    after = envoy_applies(headers, sets, removes)
    assert hl.after_mutation(msg.headers.headers, P.header_mutation(sets, removes)) == (
        len(headers), size(headers), len(after), size(after))


@given(HEADERS, MUTATIONS, st.integers(1, 40), st.integers(64, 3000))
def test_the_quick_check_never_accepts_what_does_not_fit(
        headers: list[tuple[str, bytes]], mutation: tuple[dict[str, str], list[str]],
        max_count: int, max_bytes: int) -> None:
    limits = hl.HeaderLimits(max_bytes=max_bytes, max_count=max_count)
    msg = message(headers)
    reply = P.headers_reply(False, *mutation, {}, None)
    mut = pb.ProcessingResponse.FromString(reply).request_headers.response.header_mutation
    if hl._quick_fit(msg, P.read_headers(msg), len(reply), limits):
        assert hl.fits(msg.headers.headers, mut, limits)


LIMITS = hl.HeaderLimits(max_bytes=2048, max_count=20)
BASE = [(":method", b"POST"), (":path", b"/v1/chat/completions"), (":authority", b"gw"),
        (":scheme", b"http"), ("content-length", b"2")]


def exchange(provider: str = "anthropic") -> Exchange:
    cfg = loader.parse({"routes": [{"name": "r", "provider": provider}]})
    return Exchange(cfg.route("r"), "r")


def enforce(ex: Exchange, headers: list[tuple[str, bytes]], replies: tuple[object, ...],
            limits: hl.HeaderLimits) -> tuple[object, ...]:
    """`headerlimits.enforce` as the servicer calls it: after the exchange read the headers."""
    msg = message(headers)
    ex.request_headers = P.read_headers(msg)
    return tuple(hl.enforce(ex, msg, replies, limits))  # type: ignore[arg-type]


def refused(replies: tuple[object, ...]) -> pb.ImmediateResponse | None:
    (reply,) = replies
    if isinstance(reply, bytes):
        return None
    assert isinstance(reply, pb.ProcessingResponse)
    return reply.immediate_response if reply.HasField("immediate_response") else None


def test_a_reply_that_fits_is_passed_on_untouched() -> None:
    ex = exchange()
    reply = P.headers_reply(False, {"x-api-key": "k" * 100}, ["authorization"],
                            {"model": "m"}, None)
    assert enforce(ex, BASE, (reply,), LIMITS) == (reply,)
    assert not ex.done and ex.rejection is None


def test_too_many_headers_once_the_gateway_adds_its_own_get_a_431() -> None:
    headers = BASE + [(f"x-{i}", b"v") for i in range(20 - len(BASE) - 1)]   # 19: room for 1
    assert refused(enforce(exchange(), headers, (P.CONTINUE_REQUEST_HEADERS,),
                              LIMITS)) is None
    ex = exchange()
    reply = P.headers_reply(False, {"x-api-key": "k"}, [], {"identity": "alice"}, None)
    (out,) = enforce(ex, headers, (reply,), LIMITS)
    assert isinstance(out, pb.ProcessingResponse)
    imm = out.immediate_response
    assert imm.status.code == 431 and imm.details == hl.DETAILS
    body = json.loads(imm.body)
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "2 KiB and 20 headers" in body["error"]["message"]
    assert out.dynamic_metadata.fields["extproc"].struct_value.fields[
        "identity"].string_value == "alice"          # what the reply carried is kept
    assert ex.done and ex.rejection == (431, hl.DETAILS)


def test_a_set_that_replaces_a_header_adds_nothing() -> None:
    headers = BASE + [(f"x-{i}", b"v") for i in range(20 - len(BASE) - 2)] + [
        ("authorization", b"Bearer client")]                          # 19 headers
    reply = P.headers_reply(False, {"authorization": "Bearer provider"}, [], {}, None)
    assert refused(enforce(exchange(), headers, (reply,), LIMITS)) is None


def test_bytes_count_too() -> None:
    headers = [*BASE, ("x-big", b"a" * (2048 - size(BASE) - 5 - hl.RESERVE_BYTES - 10))]
    fits = P.headers_reply(False, {"x-k": "0123456"}, [], {}, None)        # 10 bytes
    assert refused(enforce(exchange(), headers, (fits,), LIMITS)) is None
    over = P.headers_reply(False, {"x-k": "01234567"}, [], {}, None)       # 11 bytes
    imm = refused(enforce(exchange("gemini"), headers, (over,), LIMITS))
    assert imm is not None and json.loads(imm.body)["error"]["status"] == "INVALID_ARGUMENT"


def test_a_refusal_stays_the_refusal() -> None:
    headers = BASE + [(f"x-{i}", b"v") for i in range(40)]
    rejection = P.immediate(401, b"{}", {}, "extproc_unauthenticated")
    assert enforce(exchange(), headers, (rejection,), LIMITS) == (rejection,)


def test_a_400_about_the_requests_shape_gives_way_to_the_431() -> None:
    """A body-less request whose headers alone are past the limits: the 431 says more."""
    shape = P.immediate(400, b"{}", {}, "extproc_no_body")
    over = BASE + [(f"x-{i}", b"v") for i in range(40)]
    (out,) = enforce(exchange(), over, (shape,), LIMITS)
    assert out.immediate_response.details == "extproc_request_headers_too_large"
    assert enforce(exchange(), BASE, (shape,), LIMITS) == (shape,)


def test_the_limits_are_the_server_configs() -> None:
    server = loader.parse({"server": {"max_request_headers_kb": 64,
                                      "max_request_headers_count": 50},
                           "routes": [{"name": "r", "provider": "openai"}]}).server
    assert hl.of(server) == hl.HeaderLimits(max_bytes=64 * 1024, max_count=50)
