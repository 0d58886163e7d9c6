"""The guard webhook's HTTP adapter: one POST on the process's shared client, bounded by the
guard's timeout, no redirect followed; every way it can fail becomes `WebhookError` with a
short reason (`CallTooLarge` for a webhook that refuses the call's size: the client's
doing, never failed open)."""

from __future__ import annotations

import asyncio

import aiohttp

from .. import httpclient
from .webhook import (
    AnswerTooLarge,
    Call,
    CallTooLarge,
    ClientSized,
    MalformedAnswer,
    Verdict,
    WebhookError,
    WebhookSpec,
    parse_answer,
)

MAX_ANSWER_BYTES = 1024 * 1024


async def check(spec: WebhookSpec, call: Call) -> Verdict:
    """POST `call` to the webhook and return its verdict, or raise `WebhookError` (a
    `ClientSized` one for a `fail: open` guard's call past `fail_open_max_bytes`)."""
    body = call.body()
    try:
        return await _check(spec, call, body)
    except ClientSized:
        raise
    except WebhookError as exc:
        if spec.fail_open and len(body) > spec.fail_open_max_bytes:
            raise CallTooLarge(f"{exc} for a call of {len(body)} bytes, more than "
                               f"fail_open_max_bytes ({spec.fail_open_max_bytes})") from None
        raise


async def _check(spec: WebhookSpec, call: Call, data: bytes) -> Verdict:
    headers = {"content-type": "application/json", **dict(spec.headers)}
    try:
        async with asyncio.timeout(spec.timeout_s):
            # no redirect followed: a 307 would take the texts and the webhook's headers to
            # another host, a 303 turn the call into a GET whose answer judges nothing
            async with httpclient.session().post(spec.url, data=data, headers=headers,
                                                 allow_redirects=False) as resp:
                if 300 <= resp.status < 400:
                    raise WebhookError(f"HTTP {resp.status} (a redirect: not followed; name "
                                       "the final URL in the config)")
                if resp.status == 413:
                    raise CallTooLarge("HTTP 413: the webhook takes no call this large")
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
