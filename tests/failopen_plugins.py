"""Plugins for the fail-open review: a policy whose call out is cut by a deadline of its own,
the way code written before `asyncio.timeout` does it (a task cancelled by a timer). Awaiting
that cancelled task raises `asyncio.CancelledError` in the policy: an exception like any
other from the policy's side ("any other exception becomes a 500"), but a BaseException."""

from __future__ import annotations

import asyncio

from extproc.exchange import Exchange
from extproc.policy import BodyTransform, Policy


async def _lookup_with_deadline(seconds: float) -> None:
    """A call out given `seconds` by a timer that cancels it (the pre-3.11 idiom)."""
    task = asyncio.get_running_loop().create_task(asyncio.sleep(10))
    asyncio.get_running_loop().call_later(seconds, task.cancel)
    await task   # raises CancelledError once the timer fired


class SlowLookupOnHeaders(Policy):
    async def on_request_headers(self, ex: Exchange) -> None:
        if "x-test-slow-lookup" in ex.request_headers:
            await _lookup_with_deadline(0.05)


class SlowLookupOnBody(Policy):
    needs_request_body = True

    async def on_request_body(self, ex: Exchange, body: bytes) -> bytes | None:
        if "x-test-slow-lookup" in ex.request_headers:
            await _lookup_with_deadline(0.05)
        return None


class _CheckedReply(BodyTransform):
    """A reply check that calls out per chunk (as a webhook guard does); it upper-cases
    what it passes, so a reply that went through it shows."""

    is_async = True

    def __init__(self, slow: bool) -> None:
        self.slow = slow

    async def feed_async(self, chunk: bytes) -> bytes:
        if self.slow:
            await _lookup_with_deadline(0.05)
        return chunk.upper()

    async def finish_async(self) -> bytes:
        return b""


class SlowLookupOnReply(Policy):
    needs_response_body = True

    def response_transform(self, ex: Exchange) -> BodyTransform | None:
        return _CheckedReply("x-test-slow-reply" in ex.request_headers)
