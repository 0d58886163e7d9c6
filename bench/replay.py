"""The server's Python work per request, measured in process: no Envoy, no network, seconds.

For each bench workload it builds the ext_proc messages of one request the way Envoy sends
them to setup (c) (headers in `raw_value`, the reference config's BUFFERED request body and
STREAMED response body, the mock provider's exact response bytes cut where Envoy cuts them:
the back-to-back stream in one chunk, the paced stream one event per chunk then an empty last
one) and replays them through the real servicer, `Processor.Process`, under (c)'s config
(`--config full`: the reference config as shipped, every policy on: JWT auth with the
provider key injected, the PII guard on prompts and replies, usage metering, request and
token limits in memory raised out of reach), with a stand-in for the gRPC call. It prints
the CPU microseconds per request next to the same servicer answering canned replies: the
difference is what the gateway's own work costs per request.

It is the quick counterpart of `bench/run.py`. `bench/calibrate.py` gives the per-message
budget of a processor on the bench machine under load; this says what ours spends on a quiet
core. Load stretches our work (cache, preemption) but not the calibration's timed spin, so a
workload needs its figure here well under the budget. Try a change here in seconds; confirm
it with the bench.

    python bench/replay.py [--requests 2000] [--rounds 5] [--config c|full] [--json]
    python bench/replay.py --config full --idle-us 500 --requests 300 --rounds 3   # cold

With `--idle-us` the thread sleeps before each message, as the server's does between
Envoy's messages; each message then starts from cold caches and branch predictors, which is
what multiplies our work about 3x in the bench (docs/benchmark-analysis.md, "Idle between
messages").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
from envoy.config.core.v3.base_pb2 import HeaderMap, HeaderValue
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from load import PATH, WORKLOADS, Workload
from setups import processor_config

from extproc import accesslog, exchange, loader, servicer
from extproc import protocol as P
from extproc.config import ROUTE_METADATA_KEY
from extproc.mock import openai as mock_openai
from extproc.mock.common import DEFAULT_REPLY, Reply


def _headers(pairs: Sequence[tuple[str, str]]) -> pb.HttpHeaders:
    return pb.HttpHeaders(headers=HeaderMap(headers=[
        HeaderValue(key=k, raw_value=v.encode()) for k, v in pairs]))


def messages(wl: Workload) -> list[bytes]:
    """One request of `wl` as Envoy's serialised ProcessingRequests."""
    body = wl.body
    request = [(":authority", "127.0.0.1:10000"), (":path", PATH), (":method", "POST"),
               (":scheme", "http"), *wl.headers.items(), ("content-length", str(len(body))),
               ("content-type", "application/json"), ("x-forwarded-proto", "http"),
               ("x-request-id", "0bddf532-6704-4647-86be-de4e76839dfe")]
    # what the mock answers once the gateway has switched on include_usage
    sent = json.loads(body)
    if wl.stream:
        sent["stream_options"] = {"include_usage": True}
    reply = Reply.make(wl.headers.get("x-mock-reply", DEFAULT_REPLY), sent["model"],
                       "a1c6c5528e7f5243ee936fc0", 1795721497.0,
                       mock_openai.prompt_tokens(sent))
    if wl.stream:
        frames = mock_openai.build_stream(sent, reply)
        paced = "x-mock-delay-ms" in wl.headers
        chunks = [*frames, b""] if paced else [b"".join(frames)]
        ctype = "text/event-stream; charset=utf-8"
    else:
        chunks = [mock_openai.build_response(sent, reply)]
        ctype = "application/json"
    response = [(":status", "200"), ("x-request-id", "req_f6a2c709b73b09e9f89c3482"),
                ("openai-processing-ms", "1"), ("content-type", ctype),
                ("transfer-encoding", "chunked"), ("date", "Thu, 26 Nov 2026 19:31:37 GMT"),
                ("server", "Python/3.11 aiohttp/3.14.5"),
                ("x-envoy-upstream-service-time", "2")]
    modes = pb.ProtocolConfiguration(request_body_mode=P.BUFFERED,
                                     response_body_mode=P.STREAMED)
    out = [pb.ProcessingRequest(request_headers=_headers(request), protocol_config=modes),
           pb.ProcessingRequest(request_body=pb.HttpBody(body=body, end_of_stream=True)),
           pb.ProcessingRequest(response_headers=_headers(response))]
    out += [pb.ProcessingRequest(response_body=pb.HttpBody(
        body=c, end_of_stream=i == len(chunks) - 1)) for i, c in enumerate(chunks)]
    return [m.SerializeToString() for m in out]


class _Call:
    """The servicer's view of one gRPC call: metadata, read() and write()."""

    def __init__(self, raw: list[bytes], idle_s: float = 0.0) -> None:
        self.msgs = [pb.ProcessingRequest.FromString(m) for m in raw]  # as grpc parses
        self.i = 0
        self.replies: list[Any] = []
        self.idle_s = idle_s

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return ((ROUTE_METADATA_KEY, "openai"),)

    async def read(self) -> Any:
        if self.idle_s:   # the thread blocks, the core idles: as between Envoy's messages
            # (not asyncio.sleep: libuv's timers count whole milliseconds)
            time.sleep(self.idle_s)  # noqa: ASYNC251
        if self.i == len(self.msgs):
            return grpc.aio.EOF
        self.i += 1
        return self.msgs[self.i - 1]

    async def write(self, reply: Any) -> None:
        self.replies.append(reply if reply.__class__ is bytes else reply.SerializeToString())


async def replay(processor: servicer.Processor, raw: list[bytes]) -> list[bytes]:
    """One request through the servicer: its serialised replies."""
    call = _Call(raw)
    await processor.Process(None, call)  # type: ignore[arg-type]
    return call.replies


def setup_c() -> servicer.Processor:
    """The servicer under setup (c)'s config."""
    with tempfile.TemporaryDirectory() as tmp:
        return servicer.Processor(loader.load(processor_config("c", Path(tmp))))


def setup_full() -> servicer.Processor:
    """The servicer under the full reference config."""
    with tempfile.TemporaryDirectory() as tmp:
        # bench setup (h): the reference config as shipped, budgets out of reach
        return servicer.Processor(loader.load(processor_config("h", Path(tmp))))


SETUPS = {"c": setup_c, "full": setup_full}


def _canned(kind: str) -> list[bytes]:
    body = "body" in kind
    return [pb.ProcessingResponse(**{kind: pb.BodyResponse() if body else pb.HeadersResponse()}
                                  ).SerializeToString()]


_CANNED = {k: _canned(k) for k in ("request_headers", "request_body", "response_headers",
                                    "response_body")}


class _Canned(exchange.Exchange):
    """The do-nothing exchange: every message gets its empty reply."""

    async def handle(self, req: pb.ProcessingRequest, kind: str | None = None) -> Any:
        return _CANNED[kind or req.WhichOneof("request")]

    def response_chunk(self, b: pb.HttpBody) -> Any:
        return _CANNED["response_body"]


async def _per_request(processor: servicer.Processor, raw: list[bytes], n: int,
                       rounds: int, idle_s: float = 0.0) -> float:
    """Best of `rounds` runs of `n` requests, in us of this process's CPU per request (CPU,
    not wall time: a neighbour taking the core does not count; the requests' messages are
    parsed outside the timing). `idle_s`: the thread sleeps this long before each message."""
    best = float("inf")
    for _ in range(rounds):
        calls = [_Call(raw, idle_s) for _ in range(n)]
        started = time.process_time()
        for call in calls:
            await processor.Process(None, call)  # type: ignore[arg-type]
            # one turn of the loop, as the server's gets between streams: a Task a stream
            # left (settling over Redis) runs now, not after thousands more streams
            await asyncio.sleep(0)
        await processor.drain(60)   # the finish hooks (settling budgets) are part of it
        best = min(best, (time.process_time() - started) / n)
    return best * 1e6


async def _main(n: int, rounds: int, config: str = "c", idle_s: float = 0.0
                ) -> list[dict[str, Any]]:
    processor = SETUPS[config]()
    rows = []
    for wl in WORKLOADS:
        raw = messages(wl)
        if len(await replay(processor, raw)) != len(raw):
            raise SystemExit(f"{wl.name}: not one reply per message")
        ours = await _per_request(processor, raw, n, rounds, idle_s)
        servicer.Exchange = _Canned  # type: ignore[misc]
        try:
            loop = await _per_request(processor, raw, n, rounds, idle_s)
        finally:
            servicer.Exchange = exchange.Exchange  # type: ignore[misc]
        rows.append({"workload": wl.name, "messages": len(raw), "us_per_request": ours,
                     "loop_us_per_request": loop, "work_us_per_message":
                     (ours - loop) / len(raw)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--config", choices=sorted(SETUPS), default="c",
                        help="c: setup (c)'s config; full: the reference config, every "
                        "policy on, limits out of reach")
    parser.add_argument("--idle-us", type=float, default=0.0,
                        help="sleep this long before each message, as the server idles "
                        "between Envoy's messages, so each message starts from the cold "
                        "caches and predictors it meets in the bench (500 reproduces the "
                        "bench's stretch; the sleep's own CPU is in both columns)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    import uvloop

    from extproc.logs import setup_logging
    setup_logging()  # as the server: the access log's line per request is part of the cost
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        rows = uvloop.run(_main(args.requests, args.rounds, args.config,
                                args.idle_us / 1e6))
        accesslog.flush()  # the lines still batched, into the same bin
    if args.json:
        print(json.dumps(rows))
        return
    print("| workload | messages | us per request | the servicer loop alone | our work per "
          "message |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['workload']} | {r['messages']} | {r['us_per_request']:.0f} | "
              f"{r['loop_us_per_request']:.0f} | {r['work_us_per_message']:.1f} us |")


if __name__ == "__main__":
    main()
