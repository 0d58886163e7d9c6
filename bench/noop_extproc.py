"""A do-nothing ext_proc server: the cost floor of the protocol, for setup (b) of the bench.

Every message gets the matching empty reply (headers -> HeadersResponse, body ->
BodyResponse, trailers -> TrailersResponse). It never sends a mode_override and never looks
at the processing modes, so Envoy sends it every message its filter config asks for.

With `--rewrite-usage` (setup (r)) it also does the two byte edits that exact token counts
from OpenAI streams take, and nothing else: it adds `stream_options.include_usage` to a
streamed request body that has no `stream_options`, and cuts the usage-only event (the one
holding `"choices":[]`) out of the response chunk it arrives in. That is the protocol floor
of any gateway that meters OpenAI streams exactly: the rewritten bodies travel back to Envoy.

With `--burn-us N` it also spins N microseconds of CPU on every message before replying: a
calibration of what per-message work in a Python processor costs in throughput on the bench
machine (what `N` puts (b) at 0.85x of itself is the budget a real processor has).

    python bench/noop_extproc.py --port 50099 [--rewrite-usage] [--burn-us N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator

import grpc
import uvloop
from envoy.config.core.v3.base_pb2 import HeaderValue, HeaderValueOption
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.service.ext_proc.v3.external_processor_pb2_grpc import (
    ExternalProcessorServicer,
    add_ExternalProcessorServicer_to_server,
)

_REPLIES: dict[str, pb.ProcessingResponse] = {
    "request_headers": pb.ProcessingResponse(request_headers=pb.HeadersResponse()),
    "response_headers": pb.ProcessingResponse(response_headers=pb.HeadersResponse()),
    "request_body": pb.ProcessingResponse(request_body=pb.BodyResponse()),
    "response_body": pb.ProcessingResponse(response_body=pb.BodyResponse()),
    "request_trailers": pb.ProcessingResponse(request_trailers=pb.TrailersResponse()),
    "response_trailers": pb.ProcessingResponse(response_trailers=pb.TrailersResponse()),
}


_INCLUDE_USAGE = b'"stream_options":{"include_usage":true},'
_USAGE_ONLY = b'"choices":[]'


def _request_reply(body: bytes) -> pb.ProcessingResponse:
    if b'"stream":true' not in body or b'"stream_options"' in body or not body.startswith(b"{"):
        return _REPLIES["request_body"]
    new = body[:1] + _INCLUDE_USAGE + body[1:]
    length = HeaderValueOption(header=HeaderValue(key="content-length",
                                                  raw_value=str(len(new)).encode()))
    return pb.ProcessingResponse(request_body=pb.BodyResponse(response=pb.CommonResponse(
        header_mutation=pb.HeaderMutation(set_headers=[length]),
        body_mutation=pb.BodyMutation(body=new))))


def _response_reply(chunk: bytes) -> pb.ProcessingResponse:
    at = chunk.find(_USAGE_ONLY)
    if at < 0:
        return _REPLIES["response_body"]
    start = chunk.rfind(b"\n\n", 0, at)
    start = 0 if start < 0 else start + 2
    end = chunk.find(b"\n\n", at)
    end = len(chunk) if end < 0 else end + 2
    return pb.ProcessingResponse(response_body=pb.BodyResponse(response=pb.CommonResponse(
        body_mutation=pb.BodyMutation(body=chunk[:start] + chunk[end:]))))


class RewritingProcessor(ExternalProcessorServicer):
    async def Process(self, request_iterator: AsyncIterator[pb.ProcessingRequest],
                      context: grpc.aio.ServicerContext) -> AsyncIterator[pb.ProcessingResponse]:
        with contextlib.suppress(asyncio.CancelledError):
            async for req in request_iterator:
                kind = req.WhichOneof("request") or ""
                if kind == "request_body":
                    yield _request_reply(req.request_body.body)
                elif kind == "response_body":
                    yield _response_reply(req.response_body.body)
                else:
                    reply = _REPLIES.get(kind)
                    if reply is not None:
                        yield reply


class NoopProcessor(ExternalProcessorServicer):
    async def Process(self, request_iterator: AsyncIterator[pb.ProcessingRequest],
                      context: grpc.aio.ServicerContext) -> AsyncIterator[pb.ProcessingResponse]:
        with contextlib.suppress(asyncio.CancelledError):
            async for req in request_iterator:
                reply = _REPLIES.get(req.WhichOneof("request") or "")
                if reply is not None:
                    yield reply


class BurningProcessor(ExternalProcessorServicer):
    """The noop, spinning `seconds` of CPU per message (the event loop blocked, as by real
    work)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def Process(self, request_iterator: AsyncIterator[pb.ProcessingRequest],
                      context: grpc.aio.ServicerContext) -> AsyncIterator[pb.ProcessingResponse]:
        clock, seconds = time.perf_counter, self.seconds
        with contextlib.suppress(asyncio.CancelledError):
            async for req in request_iterator:
                until = clock() + seconds
                while clock() < until:
                    pass
                reply = _REPLIES.get(req.WhichOneof("request") or "")
                if reply is not None:
                    yield reply


async def serve(host: str, port: int, rewrite_usage: bool = False, burn_us: float = 0) -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0),
                                      ("grpc.max_receive_message_length", 64 << 20),
                                      ("grpc.max_send_message_length", 64 << 20)])
    servicer: ExternalProcessorServicer = NoopProcessor()
    if rewrite_usage:
        servicer = RewritingProcessor()
    elif burn_us > 0:
        servicer = BurningProcessor(burn_us / 1e6)
    add_ExternalProcessorServicer_to_server(servicer, server)
    server.add_insecure_port(f"{host}:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rewrite-usage", action="store_true",
                        help="add include_usage to streamed requests, cut the usage chunk")
    parser.add_argument("--burn-us", type=float, default=0,
                        help="spin this many microseconds of CPU per message (calibration)")
    args = parser.parse_args()
    if args.rewrite_usage and args.burn_us:
        parser.error("--burn-us is a variant of the plain noop, not of --rewrite-usage")
    uvloop.run(serve(args.host, args.port, args.rewrite_usage, args.burn_us))


if __name__ == "__main__":
    main()
