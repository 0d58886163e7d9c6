"""Found by review (fail-open paths): a policy that raises `asyncio.CancelledError` while
Envoy is still waiting for the reply (it awaited a call out a deadline of its own
cancelled) must be a policy failure like any other (a 500 in the provider's format), not
the end of the stream: `Process` returning normally closes the gRPC stream with status OK,
and Envoy takes an OK close as "processing complete" and sends the request on unprocessed
(`ext_proc.cc` `onGrpcClose`), whatever `failure_mode_allow` says."""

from __future__ import annotations

import asyncio

from envoy.service.ext_proc.v3 import external_processor_pb2 as pb

from extproc import loader
from extproc.servicer import Processor
from tests.unit.test_exchange import request_headers
from tests.unit.test_servicer import SlowContext


def test_a_policy_raising_cancelled_error_is_a_500_not_an_ok_close() -> None:
    config = loader.parse({"routes": [{
        "name": "openai", "provider": "openai",
        "plugins": [{"class": "tests.failopen_plugins:SlowLookupOnHeaders"}]}]})
    ctx = SlowContext([request_headers({":path": "/openai/v1/chat/completions",
                                        "x-test-slow-lookup": "1"}, req_mode=2,
                                       resp_mode=1)], write_delay=0)

    async def main() -> str:
        try:
            await Processor(config).Process(iter(()), ctx)  # type: ignore[arg-type]
        except asyncio.CancelledError:
            return "cancelled"    # gRPC would end the call CANCELLED: Envoy fails closed
        except Exception:
            return "error"        # a non-OK status: Envoy fails closed
        return "ok"

    ended = asyncio.run(main())
    replies = [pb.ProcessingResponse.FromString(w) for w in ctx.written]
    refused = any(r.WhichOneof("response") == "immediate_response"
                  and r.immediate_response.status.code == 500 for r in replies)
    # the call still open (Envoy waits for the request headers' reply), nothing written and
    # the handler returning normally: gRPC sends status OK, Envoy continues unprocessed
    assert refused or ended != "ok", (ended, replies)
