"""The guard webhook's HTTP adapter: one POST on the process's shared client, bounded by the
guard's timeout; every way it can fail becomes `WebhookError` with a short reason."""

from __future__ import annotations

import asyncio

import aiohttp

from .. import httpclient
from .webhook import (
    AnswerTooLarge,
    Call,
    MalformedAnswer,
    Verdict,
    WebhookError,
    WebhookSpec,
    parse_answer,
)

MAX_ANSWER_BYTES = 1024 * 1024


async def check(spec: WebhookSpec, call: Call) -> Verdict:
    """POST `call` to the webhook and return its verdict, or raise `WebhookError`."""
    headers = {"content-type": "application/json", **dict(spec.headers)}
    try:
        async with asyncio.timeout(spec.timeout_s):
            async with httpclient.session().post(spec.url, data=call.body(),
                                                 headers=headers) as resp:
                if resp.status != 200:
                    raise WebhookError(f"HTTP {resp.status}")
                body = await httpclient.read_bounded(resp.content, MAX_ANSWER_BYTES)
                if len(body) > MAX_ANSWER_BYTES:
                    raise AnswerTooLarge(f"answer larger than {MAX_ANSWER_BYTES} bytes")
    except TimeoutError:
        raise WebhookError(f"no answer within {spec.timeout_s * 1000:.0f} ms") from None
    except aiohttp.ClientError as exc:
        raise WebhookError(f"unreachable ({type(exc).__name__})") from None
    except OSError as exc:
        raise WebhookError(f"unreachable ({exc.strerror or type(exc).__name__})") from None
    try:
        return parse_answer(body, call.texts)
    except MalformedAnswer as exc:
        raise WebhookError(f"malformed answer: {exc}") from None
