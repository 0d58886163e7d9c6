"""Custom policies loaded by the test config through `plugins:`, exercising every hook.

They are real plugins (the same mechanism users have), chosen so that each effect is visible
from outside: a header upstream, a rewritten request body, an upper-cased response body.
"""

from __future__ import annotations

import asyncio
import json

from extproc.exchange import Exchange
from extproc.policy import BodyTransform, Policy, Reject


class Gatekeeper(Policy):
    """Headers only: rejects on request, breaks on request, tags both directions."""

    async def on_request_headers(self, ex: Exchange) -> None:
        if status := ex.request_headers.get("x-test-reject"):
            raise Reject(int(status), "rejected by the test gatekeeper",
                         headers={"x-test-rejected": "yes"})
        if "x-test-boom" in ex.request_headers:
            raise RuntimeError("SECRET-INTERNAL-DETAIL")
        ex.set_request_header("x-gateway-route", ex.route_name or "")
        ex.set_request_header("x-gateway-sanitised", "a\r\nb\0c")
        ex.remove_request_header("x-test-remove-me")

    async def on_response_headers(self, ex: Exchange) -> None:
        ex.set_response_header("x-gateway-saw-status", str(ex.status))


class TagRequest(Policy):
    """Rewrites the JSON request body (its length changes)."""

    needs_request_body = True

    async def on_request_body(self, ex: Exchange, body: bytes) -> bytes | None:
        doc = json.loads(body)
        doc["user"] = self.options.get("user", "tagged-by-gateway")
        return json.dumps(doc).encode()


class _UpperHoldingLastByte(BodyTransform):
    def __init__(self) -> None:
        self.held = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self.held + chunk
        self.held = data[-1:]
        return data[:-1].upper()

    def finish(self) -> bytes:
        out, self.held = self.held.upper(), b""
        return out


class UpperResponse(Policy):
    """Upper-cases ASCII in the response body, always holding one byte back (N:M replies)."""

    needs_response_body = True

    def response_transform(self, ex: Exchange) -> BodyTransform | None:
        return _UpperHoldingLastByte() if ex.status == 200 else None


class CutAtAllowance(Policy):
    """Stands in for a rate limit with `cut_streams: true`: the request header
    `x-test-allowance` becomes `ex.state["output_allowance"]`, and the stream cut
    (extproc.limits.cut) runs as the response transform."""

    needs_response_body = True

    async def on_request_headers(self, ex: Exchange) -> None:
        if (allowance := ex.request_headers.get("x-test-allowance")) is not None:
            ex.state["output_allowance"] = int(allowance)

    def response_transform(self, ex: Exchange) -> BodyTransform | None:
        from extproc.limits.cut import cut_transform
        from extproc.providers import adapter_for
        from extproc.providers.endpoints import adapter_of

        return cut_transform(ex, adapter_of(ex, adapter_for(ex.provider)))


class SlowBody(Policy):
    """Reads the request body and waits `x-test-slow-ms` milliseconds on it before letting
    it go, as a plugin calling a slow policy service does (plugins run after the limits)."""

    needs_request_body = True

    async def on_request_body(self, ex: Exchange, body: bytes) -> bytes | None:
        ms = int(ex.request_headers.get("x-test-slow-ms", "0") or 0)
        if ms:
            await asyncio.sleep(ms / 1000)
        return None


class _SlowChunks(BodyTransform):
    is_async = True

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def feed(self, chunk: bytes) -> bytes:
        return chunk

    def finish(self) -> bytes:
        return b""

    async def feed_async(self, chunk: bytes) -> bytes:
        await asyncio.sleep(self.ms / 1000)
        return chunk

    async def finish_async(self) -> bytes:
        return b""


class SlowReply(Policy):
    """A reply transform that calls out, as a webhook guard does: each reply chunk waits
    `x-test-slow-reply-ms` milliseconds (a request header)."""

    needs_response_body = True

    def response_transform(self, ex: Exchange) -> BodyTransform | None:
        ms = int(ex.request_headers.get("x-test-slow-reply-ms", "0") or 0)
        return _SlowChunks(ms) if ms else None
