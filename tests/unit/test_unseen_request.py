"""A reply whose request the processor never saw (found by the deny audit): Envoy refuses a
WebSocket upgrade on a provider route itself (`upgrade_failed`), before ext_proc gets the
request headers, and then sends the processor only the reply. That reply used to hit an
assertion (a 500 "internal error" and a traceback in the log). Envoy's refusal now passes
as it is; a reply that is no refusal is one no policy read the request of, and is refused
(default deny)."""

from __future__ import annotations

import logging

import pytest

from extproc import protocol as P
from extproc.exchange import Exchange
from extproc.protocol import pb
from tests.unit.test_exchange import header_map, immediate, one, override_of


def first_reply_message(status: int, eos: bool, mode: int = P.STREAMED
                        ) -> pb.ProcessingRequest:
    """Response headers as the first message of a stream (with its protocol config)."""
    headers = {":status": str(status), "content-type": "application/json"}
    return pb.ProcessingRequest(
        response_headers=pb.HttpHeaders(headers=header_map(headers), end_of_stream=eos),
        protocol_config=pb.ProtocolConfiguration(request_body_mode=mode,
                                                 response_body_mode=mode))


@pytest.mark.parametrize("eos", [True, False])
@pytest.mark.parametrize("status", [403, 404, 431, 503])
async def test_envoys_own_refusal_passes_as_it_is(status: int, eos: bool,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    ex = Exchange(None, None)
    with caplog.at_level(logging.ERROR):
        reply = await one(ex, first_reply_message(status, eos))
    assert not ex.failed and ex.status == status
    # unchanged: no header touched, no body asked for (nothing reads it)
    assert not reply.response_headers.HasField("response")
    assert override_of(reply) == (P.STREAMED, P.NONE)
    assert not caplog.records


async def test_its_body_passes_unchanged_in_full_duplex() -> None:
    ex = Exchange(None, None)
    await send_all(ex, first_reply_message(403, False, P.FULL_DUPLEX))
    body = b'{"error":{"code":"upgrade_failed"}}'
    replies = await ex.handle(pb.ProcessingRequest(
        response_body=pb.HttpBody(body=body, end_of_stream=True)))
    [reply] = [pb.ProcessingResponse.FromString(r) if isinstance(r, bytes) else r
               for r in replies]
    assert reply.response_body.response.body_mutation.streamed_response.body == body


async def send_all(ex: Exchange, msg: pb.ProcessingRequest) -> None:
    assert await ex.handle(msg) is not None


@pytest.mark.parametrize("status", [200, 204, 301])
async def test_a_reply_that_is_no_refusal_is_refused(status: int) -> None:
    ex = Exchange(None, None)
    code, body, _, details = immediate(await one(ex, first_reply_message(status, False),
                                                 "immediate_response"))
    assert (code, details) == (502, "extproc_unseen_request")
    assert body["error"]["type"] == "gateway_error"
    assert "never saw" in body["error"]["message"]
    assert not ex.failed
