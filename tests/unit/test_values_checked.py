"""Values too large or too strange for where the gateway copies them (found by review).

A provider's usage count too large for a double (`"prompt_tokens": 1e400` written as an
integer) fails the ext_proc stream: `fill_metadata` raises OverflowError writing it to Envoy's
dynamic metadata, and the stream's `finally` raises again in the token histogram
(`0.0 + int`), so the access log line was never written and the route's finish hooks (the
budgets' settlement) never ran (found by review). A count past 2^53 is now no count
(`providers.base.Usage`); a request's count that large is refused as one that can never
fit (`tests/unit/test_limits_reserve.py`). And a model named in a
Gemini/Vertex path with a control or line-separator character is refused (400,
`extproc_bad_model`) on a route that reads no request body too: the check ran only where
the body is read, and such a name reached Envoy's metadata and the access log."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb

from extproc import accesslog, loader
from extproc.limits.policy import RateLimit
from extproc.servicer import Processor
from tests.unit.test_exchange import request_body, request_headers, response_body, response_headers

CHAT = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
CONFIG = {"routes": [{"name": "r", "provider": "openai",
                      "default_price": {"input": 1, "output": 4},
                      "rate_limits": [{"name": "s", "key": [],
                                       "spend": [{"limit": 10, "per": "1d"}]}]}]}


class Call:
    """A stand-in for the gRPC call, feeding `messages` on route `route`."""

    def __init__(self, messages: list[pb.ProcessingRequest], route: str = "r") -> None:
        self.messages = messages
        self.replies: list[pb.ProcessingResponse] = []
        self.route = route

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("x-extproc-route", self.route),)

    def done(self) -> bool:
        return False

    async def read(self) -> Any:
        return self.messages.pop(0) if self.messages else grpc.aio.EOF

    async def write(self, reply: Any) -> None:
        self.replies.append(reply if isinstance(reply, pb.ProcessingResponse)
                            else pb.ProcessingResponse.FromString(reply))


@pytest.mark.parametrize("digits", [300, 400])
def test_a_huge_usage_count_neither_fails_the_stream_nor_skips_settlement(
        digits: int, monkeypatch: pytest.MonkeyPatch) -> None:
    finished: list[str] = []
    logged: list[str] = []
    settle = RateLimit.on_finish

    async def on_finish(self: RateLimit, ex: Any) -> None:
        finished.append(ex.request_id)
        await settle(self, ex)

    monkeypatch.setattr(RateLimit, "on_finish", on_finish)
    monkeypatch.setattr(accesslog, "write", lambda ex, outcome: logged.append(outcome))
    reply = ('{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{'
             '"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"ok"}}],'
             '"usage":{"prompt_tokens":1' + "0" * digits + ',"completion_tokens":1,'
             '"total_tokens":2}}').encode()
    call = Call([request_headers({":path": "/v1/chat/completions"}, req_mode=1, resp_mode=2),
                 request_body(CHAT, True),
                 response_headers(200, **{"content-type": "application/json"}),
                 response_body(reply, True)])

    async def run() -> None:
        await Processor(loader.parse(CONFIG)).Process(None, call)  # type: ignore[arg-type]
        await asyncio.sleep(0.05)

    asyncio.run(run())                   # 400 digits: was an OverflowError out of Process
    assert len(call.replies) == 4        # every message answered
    assert finished == ["rid-1"]         # the budget settled (or released)
    assert logged                        # the access log line written


BODY = b'{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}'


@pytest.mark.parametrize("route", [{"name": "g", "provider": "gemini"},
                                   {"name": "g", "provider": "gemini",
                                    "guards": ["pii"]}], ids=["plain", "guarded"])
# NEL is a C1 control: the path itself is refused since 2026-12-07, before its model is read
@pytest.mark.parametrize(("encoded", "details"), [("%C2%85", "extproc_bad_path"),
                                                  ("%E2%80%A8", "extproc_bad_model")],
                         ids=["NEL", "LS"])
def test_a_path_model_with_a_line_separator_is_refused(route: dict[str, Any], encoded: str,
                                                       details: str,
                                                       monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    logged: list[Any] = []
    monkeypatch.setattr(accesslog, "write", lambda ex, outcome: logged.append(
        ex.state.get("model")))
    cfg = {"guards": {"pii": {"detectors": ["email"], "action": "mask"}}, "routes": [route]}
    path = f"/v1beta/models/gemini-2.5-flash{encoded}x:generateContent"
    call = Call([request_headers({":path": path}, req_mode=1, resp_mode=2),
                 request_body(BODY, True),
                 response_headers(200, **{"content-type": "application/json"}),
                 response_body(b'{"candidates":[]}', True)], "g")
    asyncio.run(Processor(loader.parse(cfg)).Process(None, call))  # type: ignore[arg-type]
    refused = [r for r in call.replies if r.HasField("immediate_response")]
    assert refused and refused[0].immediate_response.status.code == 400, call.replies
    assert refused[0].immediate_response.details == details
    assert all(m is None or m.isprintable() for m in logged)
