"""bench/replay.py measures the real work: its messages are Envoy's, its replies the server's."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from google.protobuf.json_format import MessageToDict

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
import load  # noqa: E402
import replay  # noqa: E402


def _workload(name: str) -> load.Workload:
    return next(wl for wl in load.WORKLOADS if wl.name == name)


async def test_the_streamed_request_goes_through_the_usage_work() -> None:
    raw = replay.messages(_workload("streamed"))
    msgs = [pb.ProcessingRequest.FromString(m) for m in raw]
    assert [m.WhichOneof("request") for m in msgs] == [
        "request_headers", "request_body", "response_headers", "response_body"]
    body = msgs[3].response_body
    assert body.end_of_stream and body.body.endswith(b"data: [DONE]\n\n")
    assert b'"choices":[]' in body.body   # the mock's usage chunk, include_usage being on
    replies = [pb.ProcessingResponse.FromString(r)
               for r in await replay.replay(replay.setup_c(), raw)]
    # the gateway switched include_usage on, and cut the usage chunk back out
    sent = json.loads(replies[1].request_body.response.body_mutation.body)
    assert sent["stream_options"] == {"include_usage": True}
    out = replies[3].response_body.response.body_mutation.body
    assert out and b'"choices":[]' not in out and out.endswith(b"data: [DONE]\n\n")
    usage = MessageToDict(replies[3].dynamic_metadata)["extproc"]
    assert usage["output_tokens"] == 44 and usage["finish_reason"] == "stop"


async def test_the_paced_stream_is_one_event_per_chunk() -> None:
    msgs = [pb.ProcessingRequest.FromString(m)
            for m in replay.messages(_workload("streamed-paced"))]
    chunks = [m.response_body for m in msgs[3:]]
    assert all(c.body.startswith(b"data: ") and c.body.count(b"\n\n") == 1
               for c in chunks[:-1])
    assert chunks[-1].body == b"" and chunks[-1].end_of_stream
    assert not any(c.end_of_stream for c in chunks[:-1])


async def test_an_idle_replay_sleeps_before_each_message_and_answers_the_same() -> None:
    raw = replay.messages(_workload("non-streamed"))
    processor = replay.setup_c()
    call = replay._Call(raw, idle_s=0.002)
    started = time.monotonic()
    await processor.Process(None, call)  # type: ignore[arg-type]
    # one sleep per message and one before the end of the stream
    assert time.monotonic() - started >= 0.002 * (len(raw) + 1)
    assert len(call.replies) == len(await replay.replay(processor, raw)) == len(raw)
