"""RemoteJWKS cache policy (extproc.auth.jwks), driven by a fake fetch and a fake clock."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from extproc.auth.jwks import UNAVAILABLE, RemoteJWKS, StaticKeys, describe_source, redact_url
from extproc.auth.keys import KeySet, KeySetError
from extproc.auth.verify import AuthError

URL = "https://idp.example.com/.well-known/jwks.json"


def jwks(*kids: str) -> bytes:
    keys = []
    for kid in kids:
        d = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(),
                               as_dict=True)
        d["kid"] = kid
        keys.append(d)
    return json.dumps({"keys": keys}).encode()


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class FakeFetch:
    """Serves the queued answers in turn (the last one repeats); an Exception is raised.

    With `gate` set, every fetch waits for it, so tests can look at a fetch in flight."""

    def __init__(self, *answers: bytes | Exception, gated: bool = False) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, float]] = []
        self.gate = asyncio.Event() if gated else None
        self.started = asyncio.Event()
        self.finished = 0

    async def __call__(self, url: str, timeout_s: float) -> bytes:
        self.calls.append((url, timeout_s))
        self.started.set()
        try:
            if self.gate is not None:
                await self.gate.wait()
            answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
            if isinstance(answer, Exception):
                raise answer
            return answer
        finally:
            self.finished += 1


def remote(fetch: FakeFetch, clock: Clock, **kw: Any) -> RemoteJWKS:
    kw.setdefault("refresh_s", 300.0)
    kw.setdefault("min_refetch_s", 15.0)
    return RemoteJWKS(URL, fetch, timeout_s=1.5, clock=clock, **kw)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def kids(src: RemoteJWKS) -> set[str]:
    assert src.keyset is not None
    return {k.kid for k in src.keyset.keys if k.kid is not None}


async def test_first_call_fetches_once_then_serves_from_cache() -> None:
    clock, fetch = Clock(), FakeFetch(jwks("a"))
    src = remote(fetch, clock)
    assert src.keyset is None and src.fetches == 0
    keys = await src.candidates("a", "ES256")
    assert [k.kid for k in keys] == ["a"]
    assert fetch.calls == [(URL, 1.5)]
    clock.t += 299
    assert len(await src.candidates("a", "ES256")) == 1
    assert len(await src.candidates(None, "ES256")) == 1
    assert src.fetches == 1 and len(fetch.calls) == 1
    assert src.last_error is None


async def test_concurrent_first_callers_share_one_fetch() -> None:
    clock, fetch = Clock(), FakeFetch(jwks("a"), gated=True)
    src = remote(fetch, clock)
    waiters = [asyncio.create_task(src.candidates("a", "ES256")) for _ in range(10)]
    await fetch.started.wait()
    await settle()
    assert all(not w.done() for w in waiters)
    assert fetch.gate is not None
    fetch.gate.set()
    results = await asyncio.gather(*waiters)
    assert all(len(r) == 1 for r in results)
    assert src.fetches == 1 and len(fetch.calls) == 1


async def test_gather_of_ten_callers_fetches_once() -> None:
    clock, fetch = Clock(), FakeFetch(jwks("a"))
    src = remote(fetch, clock)
    results = await asyncio.gather(*(src.candidates("a", "ES256") for _ in range(10)))
    assert [len(r) for r in results] == [1] * 10
    assert src.fetches == 1 and len(fetch.calls) == 1


async def test_unknown_kid_triggers_a_refetch_for_key_rotation() -> None:
    clock, fetch = Clock(), FakeFetch(jwks("old"), jwks("old", "new"))
    src = remote(fetch, clock)
    await src.candidates("old", "ES256")
    clock.t += 16                       # past min_refetch_s, long before refresh_s
    keys = await src.candidates("new", "ES256")
    assert [k.kid for k in keys] == ["new"]
    assert src.fetches == 2
    assert kids(src) == {"old", "new"}


async def test_second_unknown_kid_within_min_refetch_does_not_refetch() -> None:
    clock, fetch = Clock(), FakeFetch(jwks("a"))
    src = remote(fetch, clock)
    await src.candidates("a", "ES256")
    clock.t += 20
    assert await src.candidates("forged-1", "ES256") == []
    assert src.fetches == 2
    for i in range(50):                 # a flood of forged kids
        clock.t += 0.1
        assert await src.candidates(f"forged-{i + 2}", "ES256") == []
    assert src.fetches == 2
    clock.t += 15
    assert await src.candidates("forged-x", "ES256") == []
    assert src.fetches == 3


async def test_unknown_kid_right_after_first_fetch_does_not_refetch() -> None:
    clock, fetch = Clock(), FakeFetch(jwks("a"))
    src = remote(fetch, clock)
    await src.candidates("a", "ES256")
    assert await src.candidates("b", "ES256") == []
    assert src.fetches == 1


async def test_known_kid_with_wrong_algorithm_does_not_refetch() -> None:
    clock, fetch = Clock(), FakeFetch(jwks("a"))
    src = remote(fetch, clock)
    await src.candidates("a", "ES256")
    clock.t += 100
    assert await src.candidates("a", "RS256") == []
    assert await src.candidates(None, "RS256") == []
    assert src.fetches == 1


async def test_stale_keys_are_served_while_a_background_refresh_runs() -> None:
    clock, fetch = Clock(), FakeFetch(jwks("a"), jwks("b"), gated=True)
    src = remote(fetch, clock)
    assert fetch.gate is not None
    fetch.gate.set()
    await src.candidates("a", "ES256")
    fetch.gate.clear()
    clock.t += 301                      # stale
    keys = await asyncio.wait_for(src.candidates("a", "ES256"), 1)   # does not wait
    assert [k.kid for k in keys] == ["a"]
    await settle()
    assert src.fetches == 2 and fetch.finished == 1      # refresh in flight
    # more requests meanwhile: still the old keys, no second refresh started
    assert len(await src.candidates("a", "ES256")) == 1
    await settle()
    assert src.fetches == 2
    fetch.gate.set()
    await settle()
    assert fetch.finished == 2
    assert kids(src) == {"b"}
    clock.t += 1
    assert [k.kid for k in await src.candidates("b", "ES256")] == ["b"]
    assert src.fetches == 2             # fresh again


async def test_fetch_failure_keeps_the_last_good_keys() -> None:
    clock = Clock()
    fetch = FakeFetch(jwks("a"), ConnectionError("connection refused"))
    src = remote(fetch, clock)
    await src.candidates("a", "ES256")
    clock.t += 301
    assert len(await src.candidates("a", "ES256")) == 1   # starts a refresh that fails
    await settle()
    assert src.fetches == 2
    assert kids(src) == {"a"}
    assert src.last_error is not None and "connection refused" in src.last_error
    assert URL in src.last_error
    assert len(await src.candidates("a", "ES256")) == 1
    await settle()
    assert src.fetches == 2             # a failed refresh is retried only after min_refetch_s
    clock.t += 15
    await src.candidates("a", "ES256")
    await settle()
    assert src.fetches == 3


@pytest.mark.parametrize("bad", [b"<html>oops</html>", b'{"keys": []}',
                                 b'{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}'])
async def test_unusable_answer_keeps_the_last_good_keys(bad: bytes) -> None:
    clock, fetch = Clock(), FakeFetch(jwks("a"), bad)
    src = remote(fetch, clock)
    await src.candidates("a", "ES256")
    clock.t += 16
    assert await src.candidates("rotated", "ES256") == []    # refetch, gets garbage
    assert src.fetches == 2
    assert kids(src) == {"a"}
    assert src.last_error is not None


async def test_no_keys_ever_and_failing_endpoint() -> None:
    clock, fetch = Clock(), FakeFetch(TimeoutError())
    src = remote(fetch, clock)
    with pytest.raises(AuthError) as info:
        await src.candidates("a", "ES256")
    assert info.value.status == 401
    assert info.value.message == UNAVAILABLE
    assert src.last_error is not None and "timed out" in src.last_error
    assert src.fetches == 1
    clock.t += 14                       # too soon to try again
    for _ in range(20):
        with pytest.raises(AuthError, match="signing keys are unavailable"):
            await src.candidates("a", "ES256")
    assert src.fetches == 1
    clock.t += 1
    with pytest.raises(AuthError, match="signing keys are unavailable"):
        await src.candidates("a", "ES256")
    assert src.fetches == 2


async def test_endpoint_recovers_after_failures() -> None:
    clock, fetch = Clock(), FakeFetch(RuntimeError("HTTP 503"), jwks("a"))
    src = remote(fetch, clock)
    with pytest.raises(AuthError, match="signing keys are unavailable"):
        await src.candidates("a", "ES256")
    assert src.last_error is not None and "HTTP 503" in src.last_error
    clock.t += 15
    assert len(await src.candidates("a", "ES256")) == 1
    assert src.last_error is None


async def test_empty_key_set_counts_as_failure() -> None:
    clock, fetch = Clock(), FakeFetch(b'{"keys": []}')
    src = remote(fetch, clock)
    with pytest.raises(AuthError) as info:
        await src.candidates("a", "ES256")
    assert info.value.message == UNAVAILABLE
    assert src.last_error is not None and "no usable signing keys" in src.last_error
    assert src.keyset is None
    clock.t += 1
    with pytest.raises(AuthError):
        await src.candidates("a", "ES256")
    assert src.fetches == 1


async def test_long_error_text_is_truncated() -> None:
    clock, fetch = Clock(), FakeFetch(RuntimeError("x" * 5000))
    src = remote(fetch, clock)
    with pytest.raises(AuthError):
        await src.candidates(None, "ES256")
    assert src.last_error is not None and len(src.last_error) < 400


SECRET_URL = ("https://svc-user:p%40ss-w0rd@idp.internal.corp:8443/jwks.json"
              "?access_token=tok-3f9a1c&tenant=t1#frag-secret")


@pytest.mark.parametrize("error", [
    RuntimeError(f"Cannot connect to host idp.internal.corp:8443 ssl:True [{SECRET_URL}]"),
    RuntimeError("GET https://svc-user:p@ss-w0rd@idp.internal.corp:8443/jwks.json"
                 "?access_token=tok-3f9a1c&tenant=t1 failed: certificate verify failed: "
                 "self-signed certificate in certificate chain" + "x" * 300),
    TimeoutError(),
])
async def test_a_failed_first_fetch_tells_the_client_nothing_of_the_url_or_error(
        error: Exception) -> None:
    """The 401 body and WWW-Authenticate of anyone sending a JWT-shaped token carried the
    fetch error: the JWKS URL with its userinfo and query token, an internal host, TLS error
    text (found by the red-team review). The client is told only that the keys are
    unavailable; the log and /stats keep the detail, the URL's secrets redacted."""
    clock, fetch = Clock(), FakeFetch(error)
    src = RemoteJWKS(SECRET_URL, fetch, clock=clock)
    with pytest.raises(AuthError) as info:
        await src.candidates("a", "RS256")
    assert info.value.status == 401
    assert info.value.message == "the issuer's signing keys are unavailable"
    shown = [src.last_error, describe_source(src)["url"], src.shown_url]
    assert all(s is not None for s in shown)
    for text in shown:
        for secret in ("p%40ss", "p@ss", "w0rd", "svc-user", "tok-3f9a1c", "frag-secret"):
            assert secret not in str(text), text
    assert "idp.internal.corp:8443/jwks.json" in str(src.last_error)   # the operator's
    assert describe_source(src)["url"] == "https://***@idp.internal.corp:8443/jwks.json?***#***"


@pytest.mark.parametrize(("url", "shown"), [
    (URL, URL),
    ("https://u:p@h/j?x=1", "https://***@h/j?***"),
    ("http://127.0.0.1:8080/jwks.json", "http://127.0.0.1:8080/jwks.json"),
])
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


async def test_a_cancelled_waiter_does_not_cancel_the_shared_fetch() -> None:
    clock, fetch = Clock(), FakeFetch(jwks("a"), gated=True)
    src = remote(fetch, clock)
    first = asyncio.create_task(src.candidates("a", "ES256"))
    second = asyncio.create_task(src.candidates("a", "ES256"))
    await fetch.started.wait()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert fetch.gate is not None
    fetch.gate.set()
    assert len(await asyncio.wait_for(second, 1)) == 1
    assert fetch.finished == 1 and src.fetches == 1
    assert kids(src) == {"a"}


async def test_only_waiter_cancelled_still_completes_the_fetch() -> None:
    clock, fetch = Clock(), FakeFetch(jwks("a"), gated=True)
    src = remote(fetch, clock)
    only = asyncio.create_task(src.candidates("a", "ES256"))
    await fetch.started.wait()
    only.cancel()
    with pytest.raises(asyncio.CancelledError):
        await only
    assert fetch.gate is not None
    fetch.gate.set()
    await settle()
    assert kids(src) == {"a"}
    assert len(await src.candidates("a", "ES256")) == 1
    assert src.fetches == 1


def test_static_keys_from_file(tmp_path: Any) -> None:
    path = tmp_path / "jwks.json"
    path.write_bytes(jwks("a", "b"))
    src = StaticKeys.from_file(path)
    assert len(src.keyset) == 2
    assert describe_source(src) == {"keys": 2}
    with pytest.raises(KeySetError, match="cannot read"):
        StaticKeys.from_file(tmp_path / "missing.json")


async def test_static_keys_candidates() -> None:
    src = StaticKeys(KeySet.parse(jwks("a", "b")))
    assert [k.kid for k in await src.candidates("b", "ES256")] == ["b"]
    assert len(await src.candidates(None, "ES256")) == 2
    assert await src.candidates("c", "ES256") == []


async def test_describe_remote_source() -> None:
    clock, fetch = Clock(), FakeFetch(jwks("a", "b"))
    src = remote(fetch, clock)
    assert describe_source(src) == {"url": URL, "keys": 0, "fetches": 0, "error": None}
    await src.candidates("a", "ES256")
    assert describe_source(src) == {"url": URL, "keys": 2, "fetches": 1, "error": None}
    assert describe_source(object()) == {}


async def test_the_jwks_fetch_does_not_follow_a_redirect() -> None:
    """The config checks the JWKS URL (https, or http to a loopback host); a redirect it
    followed could take the fetch to plain http or another host (found by the red-team
    review). A 3xx is a failed fetch that says so."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from extproc import httpclient

    body = jwks("a")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/moved":
                self.send_response(302)
                self.send_header("location", "/jwks.json")
                self.send_header("content-length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        assert await httpclient.fetch_bytes(base + "/jwks.json", 5) == body
        with pytest.raises(RuntimeError, match=r"HTTP 302 .*not followed"):
            await httpclient.fetch_bytes(base + "/moved", 5)
    finally:
        await httpclient.close()
        httpd.shutdown()
        httpd.server_close()
