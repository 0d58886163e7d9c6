"""The unified front never makes up a usage report: a backend reply without any usage count
(no Gemini ``usageMetadata``, an Anthropic ``usage`` with no count) is translated without
usage, and the exchange marks its usage unread, so the token budget charges its worst case
(the whole reservation), not the zeros a made-up report would say (found by the red-team
review: a 400-word Gemini stream with no usageMetadata was charged 0 tokens on the front)."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from extproc import loader
from extproc import protocol as P
from extproc.exchange import Exchange
from extproc.llm.policy import USAGE_UNREAD, USAGE_UNREAD_KIND
from extproc.llm.transforms import NO_USAGE
from extproc.mock import anthropic as m_anthropic
from extproc.mock import google as m_google
from extproc.mock.common import Reply
from extproc.translate import anthropic, google
from extproc.translate.base import ReplyContext
from tests.unit.test_exchange import (
    request_body,
    request_headers,
    response_body,
    response_headers,
    send,
)

N = 400
REPLY = Reply.make(" ".join(f"w{i}" for i in range(N)), "m", "rid", 1700000000, 7)
MSG = [{"role": "user", "content": "hi"}]
ASK = 2000
_ROUTES = (f"unread{i}" for i in itertools.count())
STREAM = ReplyContext(model="m", stream=True, include_usage=True, created=1)
WHOLE = ReplyContext(model="m", stream=False, created=1)


def _gemini_frames(usage: bool) -> list[bytes]:
    frames = []
    for frame in m_google.build_stream({"contents": []}, REPLY, sse=True):
        doc = json.loads(frame[len(b"data: "):])
        if not usage:
            doc.pop("usageMetadata", None)
        frames.append(b"data: " + json.dumps(doc).encode() + b"\r\n\r\n")
    return frames


def _anthropic_frames(usage: bool) -> list[bytes]:
    frames = []
    for frame in m_anthropic.build_stream({"messages": MSG}, REPLY):
        head, _, data = frame.partition(b"data: ")
        doc = json.loads(data)
        if not usage:
            doc.pop("usage", None)
            if isinstance(doc.get("message"), dict):
                doc["message"].pop("usage", None)
        frames.append(head + b"data: " + json.dumps(doc).encode() + b"\n\n")
    return frames


def _anthropic_frames_without_the_final_count(usage: bool) -> list[bytes]:
    """message_start's counts (one output token) and a message_delta without its usage."""
    frames = []
    for frame in _anthropic_frames(True):
        head, _, data = frame.partition(b"data: ")
        doc = json.loads(data)
        if doc.get("type") == "message_delta":
            doc.pop("usage", None)
        frames.append(head + b"data: " + json.dumps(doc).encode() + b"\n\n")
    return frames


def _gemini_whole(usage: bool) -> bytes:
    doc = json.loads(m_google.build_response({"contents": []}, REPLY))
    if not usage:
        doc.pop("usageMetadata")
    return json.dumps(doc).encode()


def _anthropic_whole(usage: bool) -> bytes:
    doc = json.loads(m_anthropic.build_response({"messages": MSG}, REPLY))
    if not usage:
        doc["usage"] = {}
    return json.dumps(doc).encode()


def _translate(module: Any, body: list[bytes], ctx: ReplyContext,
               media: str) -> tuple[bytes, Any]:
    t = module.reply_translator(200, media, ctx)
    out = b"".join(t.feed(f) for f in body) + t.finish()
    return out, t


@pytest.mark.parametrize(("module", "frames"), [(google, _gemini_frames),
                                                (anthropic, _anthropic_frames)])
def test_a_stream_without_usage_counts_gets_no_usage_chunk(module: Any, frames: Any) -> None:
    out, t = _translate(module, frames(False), STREAM, "text/event-stream")
    assert t.usage_unread and not t.failed
    assert out.endswith(b"data: [DONE]\n\n")
    assert b'"usage":{' not in out     # no made-up zeros
    out, t = _translate(module, frames(True), STREAM, "text/event-stream")
    assert not t.usage_unread and b'"choices":[],"usage":{"prompt_tokens":' in out


@pytest.mark.parametrize(("module", "body"), [(google, _gemini_whole),
                                              (anthropic, _anthropic_whole)])
def test_a_whole_reply_without_usage_counts_has_no_usage(module: Any, body: Any) -> None:
    out, t = _translate(module, [body(False)], WHOLE, "application/json")
    doc = json.loads(out)
    assert t.usage_unread and not t.failed
    assert "usage" not in doc and doc["choices"][0]["message"]["content"]
    out, t = _translate(module, [body(True)], WHOLE, "application/json")
    assert not t.usage_unread and json.loads(out)["usage"]["completion_tokens"] > 0


def _case(backend: str, usage: bool) -> tuple[dict[str, Any], str, list[bytes]]:
    route = {"provider": "openai-compatible", "auth": "none",
             "backends": {backend: {"upstream_credential": {"env": "FAKE_KEY"}}},
             "models": [{"model": "front-*", "backend": backend}]}
    frames = _gemini_frames(usage) if backend == "gemini" else _anthropic_frames(usage)
    return route, "/v1/chat/completions", frames


async def charged(route: dict[str, Any], path: str, req: dict[str, Any],
                  frames: list[bytes], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A whole stream of `frames` on a route like `route` with a token budget, the
    request `req` sent to `path`: the exchange's state once it is settled."""
    monkeypatch.setenv("FAKE_KEY", "k")
    rname = next(_ROUTES)
    cfg = loader.parse({"routes": [{"name": rname, **route, "rate_limits": [{
        "name": "t", "key": [], "tokens": [{"limit": 10 ** 6, "per": "1d"}]}]}]})
    r = cfg.route(rname)
    ex = Exchange(r, rname)
    await send(ex, request_headers(req_mode=P.BUFFERED, resp_mode=P.STREAMED, path=path))
    await send(ex, request_body(json.dumps(req).encode(), True))
    await send(ex, response_headers(200, **{"content-type": "text/event-stream"}))
    for i, f in enumerate(frames):
        await send(ex, response_body(f, i == len(frames) - 1))
    ex.close()
    for p in r.finishers:
        await p.on_finish(ex)
    return ex.state


async def _stream(backend: str, usage: bool, monkeypatch: pytest.MonkeyPatch
                  ) -> dict[str, Any]:
    """A whole front stream, served by `backend` with or without its usage counts."""
    route, path, frames = _case(backend, usage)
    # (reasoning_effort none: Gemini thinks unseen otherwise, which pays the reservation)
    req = {"model": "front-x", "stream": True, "max_completion_tokens": ASK,
           "messages": MSG, **({"reasoning_effort": "none"} if backend == "gemini" else {})}
    return await charged(route, path, req, frames, monkeypatch)


@pytest.mark.parametrize("backend", ["gemini", "anthropic"])
async def test_a_front_stream_without_usage_pays_its_reservation(
        backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    state = await _stream(backend, False, monkeypatch)
    reserved = state["ratelimit"]["reserved_tokens"]
    assert reserved > ASK
    assert state["tokens_charged"] == reserved      # the worst case, never 0
    assert state[USAGE_UNREAD] and state[USAGE_UNREAD_KIND] == NO_USAGE
    # with its counts, it pays them
    state = await _stream(backend, True, monkeypatch)
    assert USAGE_UNREAD not in state
    assert 0 < state["tokens_charged"] < reserved


async def test_a_front_stream_without_its_final_count_pays_its_reservation(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by the red team: message_start's one output token went out as the usage of a
    400-word reply, charged 8 tokens."""
    frames = _anthropic_frames_without_the_final_count(True)
    monkeypatch.setattr(f"{__name__}._anthropic_frames", lambda _usage: frames)
    state = await _stream("anthropic", True, monkeypatch)
    assert state["tokens_charged"] == state["ratelimit"]["reserved_tokens"] > ASK
    assert state[USAGE_UNREAD_KIND] == NO_USAGE
