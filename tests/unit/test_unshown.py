"""What Envoy does not show the processor (`extproc.unshown`), message by message: a body
mode NONE that no override can be relied on to lift, an override Envoy ignored, a body whose
headers were skipped, observability mode. None of them lets a request or reply pass unread."""

from __future__ import annotations

import pytest

from extproc import protocol as P
from extproc import unshown
from extproc.exchange import Exchange
from extproc.metrics import UNSHOWN
from extproc.protocol import pb
from tests.unit.test_exchange import (
    immediate,
    one,
    override_of,
    request_body,
    request_headers,
    response_body,
    response_headers,
    transform_route,
)

B, S, N, D = P.BUFFERED, P.STREAMED, P.NONE, P.FULL_DUPLEX


@pytest.mark.parametrize(("configured", "declared", "trusted", "need", "missing"), [
    ((B, S), True, False, (True, True), []),
    ((N, S), True, False, (True, True), ["request_body"]),
    ((B, N), True, False, (True, True), ["response_body"]),
    ((N, N), True, False, (True, False), ["request_body"]),
    ((N, N), True, False, (False, False), []),
    ((N, N), True, True, (True, True), []),              # the filter allows overrides
    ((D, N), True, True, (True, True), ["response_body"]),   # ... except in full duplex
    ((N, D), True, True, (True, True), ["request_body"]),
    ((N, N), False, False, (True, True), []),            # no protocol_config: unknown
])
def test_which_bodies_a_route_cannot_count_on(configured: tuple[int, int], declared: bool,
                                              trusted: bool, need: tuple[bool, bool],
                                              missing: list[str]) -> None:
    assert unshown.needs_unshown(configured, declared, trusted, *need) == missing


def count(route: str, what: str) -> float:
    return UNSHOWN.labels(route, what).value


async def test_a_body_mode_none_refuses_the_request_before_any_policy() -> None:
    ex = Exchange(transform_route(), "transform", trust_override=False)
    before = count("transform", "response_body")
    reply = await one(ex, request_headers(req_mode=B, resp_mode=N), "immediate_response")
    status, body, _, details = immediate(reply)
    assert status == 500 and "response body" in str(body) and "misconfigured" in str(body)
    assert details == "extproc_body_not_shown"
    assert count("transform", "response_body") == before + 1


async def test_trusted_overrides_lift_a_body_mode_none() -> None:
    ex = Exchange(transform_route(), "transform", trust_override=True)
    reply = await one(ex, request_headers(req_mode=N, resp_mode=N))
    assert override_of(reply) == (B, S)


async def test_without_protocol_config_the_override_does_its_work() -> None:
    ex = Exchange(transform_route(), "transform", trust_override=False)
    first = request_headers(req_mode=N, resp_mode=N)
    first.ClearField("protocol_config")
    assert override_of(await one(ex, first)) == (B, S)


async def test_an_ignored_request_body_override_refuses_the_reply() -> None:
    ex = Exchange(transform_route(), "transform", trust_override=True)
    await one(ex, request_headers(req_mode=N, resp_mode=S))
    reply = await one(ex, response_headers(200), "immediate_response")
    status, body, _, details = immediate(reply)
    assert status == 500 and "ignored" in str(body) and details == "extproc_body_not_shown"


async def test_an_honoured_override_is_not_refused() -> None:
    ex = Exchange(transform_route(), "transform", trust_override=True)
    await one(ex, request_headers(req_mode=N, resp_mode=S))
    await one(ex, request_body(b'{"model":"m"}', True))
    assert (await one(ex, response_headers(200))).WhichOneof("response") == "response_headers"


async def test_a_request_body_without_headers_is_refused() -> None:
    ex = Exchange(None, None, trust_override=False)
    first = request_body(b'{"model":"m"}', True)
    first.protocol_config.CopyFrom(pb.ProtocolConfiguration(request_body_mode=B,
                                                            response_body_mode=S))
    status, body, _, details = immediate(await one(ex, first, "immediate_response"))
    assert status == 500 and "request_header_mode" in str(body)
    assert details == "extproc_headers_not_shown"


async def test_a_response_body_without_headers_is_refused() -> None:
    ex = Exchange(transform_route(), "transform", trust_override=False)
    await one(ex, request_headers(req_mode=B, resp_mode=S))
    await one(ex, request_body(b'{"model":"m"}', True))
    reply = await one(ex, response_body(b"secret reply", True), "immediate_response")
    status, body, _, details = immediate(reply)
    assert status == 500 and "response_header_mode" in str(body)
    assert "secret" not in str(body) and details == "extproc_headers_not_shown"


async def test_observability_mode_is_counted() -> None:
    ex = Exchange(transform_route(), "transform")
    before = count("transform", "observability_mode")
    first = request_headers(req_mode=S, resp_mode=S)
    first.observability_mode = True
    await ex.handle(first)
    assert count("transform", "observability_mode") == before + 1


async def test_a_pass_through_request_needs_no_body_and_is_not_refused() -> None:
    """GET /v1/models on a route whose bodies Envoy does not send: no policy reads them."""
    from extproc import loader
    route = loader.parse({"routes": [{"name": "r", "provider": "openai",
                                      "passthrough": [{"path": "/v1/models"}]}]}).routes["r"]
    ex = Exchange(route, "r", trust_override=False)
    first = request_headers(req_mode=N, resp_mode=N, eos=True, path="/v1/models")
    for pair in first.request_headers.headers.headers:
        if pair.key == ":method":
            pair.raw_value = b"GET"
    reply = await one(ex, first)
    assert reply.WhichOneof("response") == "request_headers"
    # while the same route refuses a chat request it could not read the reply of
    ex = Exchange(route, "r", trust_override=False)
    await one(ex, request_headers(req_mode=B, resp_mode=N), "immediate_response")


def test_each_kind_is_logged_at_most_once_a_minute_per_route(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    clock = [1000.0]
    monkeypatch.setattr(unshown.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(unshown, "_logged", {})

    def logged() -> list[str]:
        out = [r.getMessage()[:30] for r in caplog.records if r.name == unshown.log.name]
        caplog.clear()
        return out

    for _ in range(3):
        unshown.whole_in_first_part("a")
        unshown.count("a", "request_body")
    unshown.whole_in_first_part("b")
    assert len(logged()) == 3            # one each: a's two kinds, b's
    clock[0] += 59.9
    unshown.whole_in_first_part("a")
    unshown.count("a", "request_body")
    assert logged() == []
    clock[0] += 0.1
    unshown.whole_in_first_part("a")
    unshown.count("a", "request_body")
    assert len(logged()) == 2
