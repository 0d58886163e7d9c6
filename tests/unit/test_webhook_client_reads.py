"""The webhook client reads the whole answer (found by review: `StreamReader.read(n)` returns
what is buffered, so an answer in more than one read was cut and taken for malformed, and a
`fail: open` guard let the prompt through unmasked); an answer past the cap, which a client
decides by the number of values to mask, is refused, never failed open; the remote JWKS
fetch reads its whole body too."""
from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from extproc import httpclient
from extproc.guards import webhook_client
from extproc.guards.webhook import Call, Text, WebhookError, WebhookSpec
from extproc.policy import Reject

from .test_guard_policy import build, chat, exchange

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def _serving(app: web.Application) -> AsyncIterator[str]:
    """`app` on a free loopback port, as its base URL; the client's session closed after."""
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await httpclient.close()
        await runner.cleanup()


def _app(method: str, path: str, handler: Handler) -> web.Application:
    app = web.Application()
    app.router.add_route(method, path, handler)
    return app


def _sample() -> web.Application:
    """The sample webhook, masking e-mail addresses."""
    from extproc.guards.sample_webhook import make_app
    return make_app(deny=[], mask=["email"])


def _check(app: web.Application, text: str, fail_open: bool = False) -> Any:
    """The verdict `app` gives on `text` through the client, or the `WebhookError`."""
    async def go() -> Any:
        async with _serving(app) as url:
            call = Call("dlp", "request", "r", "openai", texts=[Text("user", text)])
            try:
                return await webhook_client.check(
                    WebhookSpec(url=f"{url}/check", timeout_s=2.0, fail_open=fail_open), call)
            except WebhookError as exc:
                return exc
    return asyncio.run(go())


def _guard(app: web.Application, prompt: str) -> Any:
    """(the prompt as sent on, the guards) through a `fail: open` webhook guard on `app`."""
    async def go() -> Any:
        async with _serving(app) as url:
            g = build({"dlp": {"webhook": {"url": f"{url}/check", "fail": "open",
                                           "timeout_ms": 4000}}}, ["dlp"])
            return await g.on_request_body(exchange(), chat(("user", prompt))), g
    return asyncio.run(go())


def _answer() -> bytes:
    return json.dumps({"action": "mask", "masks": [
        {"text": 0, "start": 9, "end": 29, "placeholder": "<EMAIL>"}]}).encode()


def _in_two_writes(body: bytes, cut: int, length: bool = False) -> Handler:
    """A handler writing `body` in two pieces, chunked (or with its content-length)."""
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "application/json"})
        if length:
            resp.content_length = len(body)
        await resp.prepare(request)
        await resp.write(body[:cut])
        await asyncio.sleep(0.05)
        await resp.write(body[cut:])
        await resp.write_eof()
        return resp
    return handler


def test_an_answer_written_in_two_chunks_is_read_whole() -> None:
    got = _check(_app("POST", "/check", _in_two_writes(_answer(), 10)),
                 "write to john.doe@example.com")
    assert not isinstance(got, Exception), got
    assert got.action == "mask"


def test_a_large_answer_with_content_length_is_read_whole() -> None:
    # a valid answer of ~300 KB (a mask answer for a long prompt, or a long reason padded)
    body = json.dumps({"action": "reject", "reason": "x", "pad": "y" * 300_000}).encode()

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    got = _check(_app("POST", "/check", handler), "write to john.doe@example.com")
    assert not isinstance(got, Exception), got
    assert got.action == "reject"


def test_the_sample_webhooks_mask_answer_for_many_addresses_is_read_whole() -> None:
    # A client sends a prompt with 3000 addresses; the sample webhook answers a valid mask
    # (about 200 KB, under MAX_ANSWER_BYTES). The client read only the first socket read
    # of it, called it malformed, and a `fail: open` guard let every address through.
    prompt = " ".join(f"user{i}@example.com" for i in range(3000))
    got = _check(_sample(), prompt, fail_open=True)
    assert not isinstance(got, Exception), got
    assert got.action == "mask" and len(got.masks) == 3000


def test_a_fail_open_webhook_guard_masks_a_prompt_with_many_addresses() -> None:
    """Through the Guards policy: a `fail: open` webhook guard whose service (the sample)
    masks e-mail addresses. A client that puts 3000 addresses in its prompt makes the valid
    mask answer long enough to arrive in more than one read; the guard took it for a
    failure and sent every address upstream in clear."""
    out, g = _guard(_sample(), " ".join(f"user{i}@example.com" for i in range(3000)))
    assert g.stats["webhook_errors"] == 0, g.stats
    assert out is not None and b"user1@example.com" not in out


def test_a_fail_open_webhook_guard_is_not_skipped_by_a_prompt_whose_answer_is_large() -> None:
    """Even read whole, a mask answer is capped at MAX_ANSWER_BYTES (1 MiB) and a larger one
    is a failure: each mask costs ~70 bytes of answer for 7 bytes of prompt ('a@b.co '), so
    a 112 KB prompt makes any masking webhook's answer too large, and `fail: open` then
    passed the prompt unmasked. The client decides when the guard fails."""
    with pytest.raises(Reject) as refused:
        _guard(_sample(), " ".join("a@b.co" for _ in range(16000)))
    # a client-caused failure is not the webhook being down: refused, never failed open
    assert refused.value.status == 413 and refused.value.details == "extproc_guard_too_large"


def test_fetch_bytes_reads_a_body_that_arrives_in_two_pieces() -> None:
    """The same single read in `httpclient.fetch_bytes` (remote JWKS): a JWKS whose body
    arrives in two reads (a large key set over a real network) was cut short."""
    jwks = json.dumps({"keys": [{"kty": "RSA", "kid": f"k{i}", "n": "x" * 400, "e": "AQAB"}
                                for i in range(8)]}).encode()

    async def go() -> bytes:
        async with _serving(_app("GET", "/jwks", _in_two_writes(jwks, 1400, True))) as url:
            return await httpclient.fetch_bytes(f"{url}/jwks", 2.0)

    assert asyncio.run(go()) == jwks
