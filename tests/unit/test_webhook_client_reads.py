"""The webhook client reads the whole answer (found by review: `StreamReader.read(n)` returns
what is buffered, so an answer in more than one read was cut and taken for malformed, and a
`fail: open` guard let the prompt through unmasked); an answer past the cap, which a client
decides by the number of values to mask, is refused, never failed open; the remote JWKS
fetch reads its whole body too."""
from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web

from extproc import httpclient
from extproc.guards import webhook_client
from extproc.guards.webhook import Call, Text, WebhookError, WebhookSpec
from extproc.policy import Reject


def _answer() -> bytes:
    return json.dumps({"action": "mask", "masks": [
        {"text": 0, "start": 9, "end": 29, "placeholder": "<EMAIL>"}]}).encode()


async def _serve(handler) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/check", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}/check"


def _run(handler):
    async def go():
        runner, url = await _serve(handler)
        try:
            call = Call("dlp", "request", "r", "openai",
                        texts=[Text("user", "write to john.doe@example.com")])
            try:
                return await webhook_client.check(WebhookSpec(url=url, timeout_s=2.0), call)
            except WebhookError as exc:
                return exc
        finally:
            await httpclient.close()
            await runner.cleanup()
    return asyncio.run(go())


def test_an_answer_written_in_two_chunks_is_read_whole() -> None:
    body = _answer()

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "application/json"})
        await resp.prepare(request)            # chunked transfer encoding
        await resp.write(body[:10])
        await asyncio.sleep(0.05)
        await resp.write(body[10:])
        await resp.write_eof()
        return resp

    got = _run(handler)
    assert not isinstance(got, Exception), got
    assert got.action == "mask"


def test_a_large_answer_with_content_length_is_read_whole() -> None:
    # a valid answer of ~300 KB (a mask answer for a long prompt, or a long reason padded)
    body = json.dumps({"action": "reject", "reason": "x", "pad": "y" * 300_000}).encode()

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    got = _run(handler)
    assert not isinstance(got, Exception), got
    assert got.action == "reject"


def test_the_sample_webhooks_mask_answer_for_many_addresses_is_read_whole() -> None:
    # A client sends a prompt with 3000 addresses; the sample webhook answers a valid mask
    # (about 200 KB, under MAX_ANSWER_BYTES). The client reads only the first socket read
    # of it, calls it malformed, and a `fail: open` guard lets every address through.
    from extproc.guards.sample_webhook import make_app

    prompt = " ".join(f"user{i}@example.com" for i in range(3000))

    async def go():
        runner = web.AppRunner(make_app(deny=[], mask=["email"]))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/check"
        try:
            call = Call("dlp", "request", "r", "openai", texts=[Text("user", prompt)])
            try:
                return await webhook_client.check(WebhookSpec(url=url, timeout_s=2.0,
                                                              fail_open=True), call)
            except WebhookError as exc:
                return exc
        finally:
            await httpclient.close()
            await runner.cleanup()

    got = asyncio.run(go())
    assert not isinstance(got, Exception), got
    assert got.action == "mask" and len(got.masks) == 3000


def test_a_fail_open_webhook_guard_masks_a_prompt_with_many_addresses() -> None:
    """Through the Guards policy: a `fail: open` webhook guard whose service (the sample)
    masks e-mail addresses. A client that puts 3000 addresses in its prompt makes the valid
    mask answer long enough to arrive in more than one read; the guard takes it for a
    failure and sends every address upstream in clear."""
    from extproc.guards.sample_webhook import make_app

    from .test_guard_policy import build, chat, exchange

    prompt = " ".join(f"user{i}@example.com" for i in range(3000))

    async def go():
        runner = web.AppRunner(make_app(deny=[], mask=["email"]))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/check"
        g = build({"dlp": {"webhook": {"url": url, "fail": "open", "timeout_ms": 4000}}},
                  ["dlp"])
        ex = exchange()
        try:
            out = await g.on_request_body(ex, chat(("user", prompt)))
        finally:
            await httpclient.close()
            await runner.cleanup()
        return out, ex, g

    out, _, g = asyncio.run(go())
    assert g.stats["webhook_errors"] == 0, g.stats
    assert out is not None and b"user1@example.com" not in out


def test_a_fail_open_webhook_guard_is_not_skipped_by_a_prompt_whose_answer_is_large() -> None:
    """Even read whole, a mask answer is capped at MAX_ANSWER_BYTES (1 MiB) and a larger one
    is a failure: each mask costs ~70 bytes of answer for 7 bytes of prompt ('a@b.co '), so
    a 112 KB prompt makes any masking webhook's answer too large, and `fail: open` then
    passes the prompt unmasked. The client decides when the guard fails."""
    from extproc.guards.sample_webhook import make_app

    from .test_guard_policy import build, chat, exchange

    prompt = " ".join("a@b.co" for _ in range(16000))

    async def go() -> None:
        runner = web.AppRunner(make_app(deny=[], mask=["email"]))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/check"
        g = build({"dlp": {"webhook": {"url": url, "fail": "open", "timeout_ms": 4000}}},
                  ["dlp"])
        try:
            await g.on_request_body(exchange(), chat(("user", prompt)))
        finally:
            await httpclient.close()
            await runner.cleanup()

    with pytest.raises(Reject) as refused:
        asyncio.run(go())
    # a client-caused failure is not the webhook being down: refused, never failed open
    assert refused.value.status == 413 and refused.value.details == "extproc_guard_too_large"


def test_fetch_bytes_reads_a_body_that_arrives_in_two_pieces() -> None:
    """The same single read in `httpclient.fetch_bytes` (remote JWKS): a JWKS whose body
    arrives in two reads (a large key set over a real network) is cut short."""
    jwks = json.dumps({"keys": [{"kty": "RSA", "kid": f"k{i}", "n": "x" * 400, "e": "AQAB"}
                                for i in range(8)]}).encode()

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "application/json"})
        resp.content_length = len(jwks)
        await resp.prepare(request)
        await resp.write(jwks[:1400])
        await asyncio.sleep(0.05)
        await resp.write(jwks[1400:])
        await resp.write_eof()
        return resp

    async def go():
        app = web.Application()
        app.router.add_get("/jwks", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            return await httpclient.fetch_bytes(
                f"http://127.0.0.1:{runner.addresses[0][1]}/jwks", 2.0)
        finally:
            await httpclient.close()
            await runner.cleanup()

    assert asyncio.run(go()) == jwks
