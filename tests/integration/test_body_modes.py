"""Through a real Envoy: every body mode, 1-byte and very large chunks, header mutations,
mode_override skipping bodies nobody needs, and rejections in each provider's format."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest

from tests.harness import Gateway

CHAT = {"model": "gpt-4o-mini", "stream": True,
        "messages": [{"role": "user", "content": "hello there"}]}
SHORT = "Streaming through every body mode, byte by byte: ünïcode ✓ too."
SHORT_ASCII = "Streaming through every body mode, byte by byte."
LONG = " ".join(f"word{i}" for i in range(2500))


def reply_direct(gw: Gateway, headers: dict[str, str], body: dict) -> bytes:
    """What the mock itself answers (the reference the gateway's output is compared with)."""
    r = httpx.post(f"{gw.mock.url}/v1/chat/completions", json=body, headers=headers,
                   timeout=30)
    return r.content


def same_reply(a: bytes, b: bytes) -> bool:
    """Equal but for per-request ids and timestamps (the mock derives ids from the request)."""
    volatile = re.compile(rb'"(id|created|ID|CREATED)":("[^"]*"|\d+)')
    return volatile.sub(b"", a) == volatile.sub(b"", b)


def one_byte_chunks(data: bytes) -> Iterator[bytes]:
    for i in range(len(data)):
        yield data[i:i + 1]


def messages(gw: Gateway) -> dict[str, int]:
    assert gw.server is not None
    return gw.server.stats()["messages"]


@pytest.mark.parametrize("mode", ["buffered", "streamed", "duplex"])
@pytest.mark.parametrize("size", ["tiny-chunks", "huge-chunks"])
def test_body_policies_in_every_mode(gateway: Gateway, mode: str, size: str) -> None:
    if size == "tiny-chunks":
        headers = {"x-mock-reply": SHORT.encode(), "x-mock-chunk-bytes": "1"}  # type: ignore
        chat = CHAT
    else:  # a large prompt echoed back: big request body, big response chunks
        headers = {"x-mock-reply": "echo", "x-mock-chunk-bytes": "262144"}
        chat = {**CHAT, "messages": [{"role": "user", "content": LONG}]}
    expected = reply_direct(gateway, headers, chat).upper()
    payload = json.dumps(chat).encode()
    # stream the request body one byte per chunk where the mode streams request bodies
    content = one_byte_chunks(payload) if mode != "buffered" and size == "tiny-chunks" \
        else payload
    before = messages(gateway)
    with httpx.Client(timeout=60) as client:
        r = client.post(f"{gateway.url}/mode-{mode}/transform/v1/chat/completions",
                        content=content, headers={**headers,
                                                  "content-type": "application/json"})
    assert r.status_code == 200, r.text[:500]
    assert same_reply(r.content, expected)
    assert r.headers["x-gateway-saw-status"] == "200"
    upstream = gateway.mock.last()
    sent = json.loads(upstream["body"])
    assert sent["user"] == "tagged-by-gateway"      # the rewritten body reached upstream
    assert sent["messages"] == chat["messages"]
    assert upstream["headers"]["x-gateway-route"] == "transform"
    after = messages(gateway)
    assert after["response_body"] > before["response_body"]
    assert after["request_body"] > before["request_body"]


@pytest.mark.parametrize("prefix", ["/plain", "/mode-none/plain", "/mode-streamed/plain",
                                    "/mode-buffered/plain"])
def test_headers_only_route_gets_no_body_messages(gateway: Gateway, prefix: str) -> None:
    """Nothing on the route needs a body, so mode_override (or NONE) keeps bodies away."""
    before = messages(gateway)
    r = httpx.post(f"{gateway.url}{prefix}/v1/chat/completions", json=CHAT, timeout=30,
                   headers={"x-test-remove-me": "secret", "x-mock-reply": SHORT_ASCII})
    assert r.status_code == 200
    upstream = gateway.mock.last()["headers"]
    assert same_reply(r.content, reply_direct(gateway, {"x-mock-reply": SHORT_ASCII}, CHAT))
    assert r.headers["x-gateway-saw-status"] == "200"
    assert upstream["x-gateway-route"] == "plain"
    assert "x-test-remove-me" not in upstream
    assert upstream["x-gateway-sanitised"] == "a  b c"    # CR, LF and NUL never reach a header
    assert "accept-encoding" not in upstream               # identity bodies from upstream
    after = messages(gateway)
    assert after["request_headers"] == before["request_headers"] + 1
    assert after["response_headers"] == before["response_headers"] + 1
    assert after["request_body"] == before["request_body"]
    assert after["response_body"] == before["response_body"]


def test_route_configured_none_is_upgraded_when_a_policy_needs_bodies(gateway: Gateway) -> None:
    headers = {"x-mock-reply": SHORT_ASCII}
    r = httpx.post(f"{gateway.url}/mode-none/transform/v1/chat/completions", json=CHAT,
                   headers=headers, timeout=30)
    assert r.status_code == 200
    assert json.loads(gateway.mock.last()["body"])["user"] == "tagged-by-gateway"
    assert same_reply(r.content, reply_direct(gateway, headers, CHAT).upper())


def test_get_without_body(gateway: Gateway) -> None:
    r = httpx.get(f"{gateway.url}/mode-duplex/transform/v1/models", timeout=30)
    assert r.status_code == 200
    assert r.json()["OBJECT"] == "LIST"   # upper-cased by the transform


@pytest.mark.parametrize(("prefix", "status"), [
    ("/openai/v1/chat/completions", 403), ("/azure/openai/deployments/d/chat/completions", 429),
    ("/anthropic/v1/messages", 401), ("/gemini/v1beta/models/gemini-2.5-flash:generateContent",
                                      403),
    ("/vertex/v1/projects/p/locations/l/publishers/google/models/m:generateContent", 400)])
def test_reject_in_provider_format(gateway: Gateway, prefix: str, status: int) -> None:
    before = gateway.mock.last()
    r = httpx.post(f"{gateway.url}{prefix}", json=CHAT, headers={"x-test-reject": str(status)},
                   timeout=30)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/json"
    assert r.headers["x-test-rejected"] == "yes"
    doc = r.json()
    provider = prefix.split("/")[1]
    if provider == "anthropic":
        assert doc == {"type": "error", "error": {"type": "authentication_error",
                                                  "message": "rejected by the test gatekeeper"}}
    elif provider in ("gemini", "vertex"):
        assert doc["error"]["code"] == status
        assert doc["error"]["message"] == "rejected by the test gatekeeper"
        assert doc["error"]["status"] in ("PERMISSION_DENIED", "INVALID_ARGUMENT")
    else:
        assert doc["error"]["message"] == "rejected by the test gatekeeper"
        assert doc["error"]["type"] in ("permission_error", "rate_limit_error")
    assert gateway.mock.last() == before    # nothing reached the provider


def test_policy_crash_is_a_clean_500(gateway: Gateway) -> None:
    r = httpx.post(f"{gateway.url}/anthropic/v1/messages", json=CHAT,
                   headers={"x-test-boom": "1"}, timeout=30)
    assert r.status_code == 500
    assert r.json() == {"type": "error", "error": {"type": "api_error",
                                                   "message": "internal error in the gateway"}}
    assert "SECRET" not in r.text and "Traceback" not in r.text
    assert gateway.server is not None
    assert "SECRET-INTERNAL-DETAIL" in gateway.server.proc.log()   # logged for the operator


@pytest.mark.parametrize("mode", ["buffered", "streamed", "duplex"])
@pytest.mark.parametrize("excess", [100, 12 * 1024 * 1024])
def test_body_over_the_limit_is_413_in_provider_format(gateway: Gateway, mode: str,
                                                       excess: int) -> None:
    """Just over the limit the processor answers; far over it Envoy does; both say 413 in
    the provider's format, and nothing reaches the provider."""
    before = gateway.mock.last()
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * (1024 * 1024 + excess)}]}
    r = httpx.post(f"{gateway.url}/mode-{mode}/transform/v1/chat/completions", json=big,
                   timeout=30)
    assert r.status_code == 413, r.text[:300]
    assert "error" in r.json()
    assert "limit" in r.json()["error"]["message"] or "Too Large" in r.json()["error"]["message"]
    assert gateway.mock.last() == before


def test_headers_only_route_does_not_buffer_or_limit(gateway: Gateway) -> None:
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * (3 * 1024 * 1024)}]}
    r = httpx.post(f"{gateway.url}/plain/v1/chat/completions", json=big, timeout=30)
    assert r.status_code == 200
    assert json.loads(gateway.mock.last()["body"]) == big
