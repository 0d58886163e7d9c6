"""What a client cannot make a webhook guard do (found by review):
- follow a redirect: a 307 would re-send the texts and the webhook's headers to the host it
  names, a 303 turn the call into a bodiless GET whose answer would judge nothing (the JWKS
  fetch refuses redirects for the same reason);
- fail open by the size of its text: a webhook that cannot judge that much in `timeout_ms`,
  or refuses the body with a 413, fails because of the client; past `fail_open_max_bytes`
  (and on any 413) a `fail: open` guard refuses instead of letting the text through."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web

from extproc import httpclient
from extproc.guards import webhook_client
from extproc.guards.webhook import (
    Call,
    CallTooLarge,
    ClientSized,
    Text,
    WebhookError,
    WebhookSpec,
)
from extproc.policy import Reject

from .test_guard_policy import build, chat, exchange
from .test_webhook_client_reads import _serving

SECRET = "dlp-api-key-0123456789"
ADDRESS = "john.doe@example.com"


def _redirected(status: int) -> tuple[Any, list[str]]:
    seen: list[str] = []

    async def elsewhere(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.headers.get('x-api-key')} "
                    f"{await request.text()}")
        return web.json_response({"action": "pass"})

    async def go() -> Any:
        other = web.Application()
        other.router.add_route("*", "/steal", elsewhere)
        async with _serving(other) as other_url:
            async def webhook(request: web.Request) -> web.Response:
                return web.Response(status=status, headers={"location": f"{other_url}/steal"})
            app = web.Application()
            app.router.add_post("/check", webhook)
            async with _serving(app) as url:
                call = Call("dlp", "request", "r", "openai",
                            texts=[Text("user", f"mail {ADDRESS}")])
                spec = WebhookSpec(url=f"{url}/check", timeout_s=2.0,
                                   headers=(("x-api-key", SECRET),))
                try:
                    return await webhook_client.check(spec, call)
                except WebhookError as exc:
                    return exc
    return asyncio.run(go()), seen


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_from_the_webhook_is_not_followed(status: int) -> None:
    verdict, seen = _redirected(status)
    assert seen == []
    assert isinstance(verdict, WebhookError) and "redirect" in str(verdict)


def _on(app: web.Application, prompt: str, **webhook: Any) -> tuple[Any, Any]:
    """(what the guard sends on, or the Reject; the guards) through a webhook guard."""
    async def go() -> Any:
        async with _serving(app) as url:
            g = build({"dlp": {"webhook": {"url": f"{url}/check", **webhook}}}, ["dlp"])
            try:
                return await g.on_request_body(exchange(), chat(("user", prompt))), g
            except Reject as exc:
                return exc, g
    return asyncio.run(go())


def _slow() -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(1.0)
        return web.json_response({"action": "pass"})
    app = web.Application()
    app.router.add_post("/check", handler)
    return app


def test_a_call_past_fail_open_max_bytes_that_times_out_is_refused() -> None:
    prompt = f"write to {ADDRESS} " + "word " * 2000
    out, g = _on(_slow(), prompt, fail="open", timeout_ms=100, fail_open_max_bytes=1000)
    assert isinstance(out, Reject) and out.status == 413, out
    assert "cannot judge this much text" in out.message
    assert "failed on a call this large" in out.message   # (no verdict was too long)
    assert g.stats["webhook_failed_open"] == 0


def test_a_short_call_that_times_out_still_fails_open() -> None:
    out, g = _on(_slow(), f"write to {ADDRESS}", fail="open", timeout_ms=100)
    assert out is None   # (sent on as it came: the documented `fail: open`)
    assert g.stats["webhook_failed_open"] == 1


def test_a_413_from_the_webhook_is_refused_even_when_failing_open() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=413)
    app = web.Application()
    app.router.add_post("/check", handler)
    out, g = _on(app, f"write to {ADDRESS}", fail="open")
    assert isinstance(out, Reject) and out.status == 413, out
    assert g.stats["webhook_failed_open"] == 0


def test_a_failure_of_a_fail_closed_guard_is_an_outage_whatever_the_size() -> None:
    async def go() -> Any:
        call = Call("dlp", "request", "r", "openai", texts=[Text("user", "x" * 100_000)])
        spec = WebhookSpec(url="http://127.0.0.1:9/check", timeout_s=0.5)
        try:
            return await webhook_client.check(spec, call)
        except WebhookError as exc:
            return exc
        finally:
            await httpclient.close()
    exc = asyncio.run(go())
    assert isinstance(exc, WebhookError) and not isinstance(exc, ClientSized)
    assert not isinstance(exc, CallTooLarge)


def test_fail_open_max_bytes_is_read_from_the_config() -> None:
    g = build({"dlp": {"webhook": {"url": "http://h/check", "fail": "open",
                                   "fail_open_max_bytes": 5000}}}, ["dlp"])
    spec = g.request_webhooks[0].webhook
    assert spec is not None and spec.fail_open_max_bytes == 5000
    default = build({"dlp": {"webhook": {"url": "http://h/check"}}}, ["dlp"])
    assert default.request_webhooks[0].webhook.fail_open_max_bytes == 65536


def test_many_empty_texts_count_as_the_size_they_post() -> None:
    """50,001 texts of 25 characters in all, a 1.3 MB call: its size, not its characters,
    is what the webhook cannot judge in time (found by the review of the first cap)."""
    import json

    parts = [{"type": "text", "text": ""}] * 50_000 + [{"type": "text",
                                                        "text": f"mail {ADDRESS}"}]
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": parts}]})

    async def go() -> Any:
        async with _serving(_slow()) as url:
            g = build({"dlp": {"webhook": {"url": f"{url}/check", "fail": "open",
                                           "timeout_ms": 100}}}, ["dlp"])
            try:
                return await g.on_request_body(exchange(), body.encode())
            except Reject as exc:
                return exc
    out = asyncio.run(go())
    assert isinstance(out, Reject) and out.status == 413, out
