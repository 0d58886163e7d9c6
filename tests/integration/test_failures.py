"""Failure behaviour through a real Envoy: processor down (fail closed / open), processor
killed or stopped mid-stream, upstream reset mid-stream, client gone mid-stream."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import httpx
import pytest

from tests.conftest import add_mode_routes, gateway_config
from tests.harness import Gateway, Mock

CHAT = {"model": "gpt-4o-mini", "stream": True,
        "messages": [{"role": "user", "content": "hi"}]}
TEXT = " ".join(f"piece{i}" for i in range(30))
SLOW = {"x-mock-reply": TEXT, "x-mock-delay-ms": "60"}


@pytest.fixture
def own_gateway(tmp_path: Path, mock: Mock) -> Iterator[Gateway]:
    """A gateway of this test's own, for tests that kill or stop its server."""
    gw = Gateway(tmp_path, gateway_config(), mock=mock, adjust=add_mode_routes)
    yield gw
    gw.close()


@pytest.mark.parametrize(("path", "check"), [
    ("/openai/v1/chat/completions",
     lambda d: d["error"]["type"] == "gateway_error" and "ext_proc" in d["error"]["code"]),
    ("/anthropic/v1/messages",
     lambda d: d["type"] == "error" and d["error"]["type"] == "api_error"),
    ("/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent",
     lambda d: d["error"]["code"] == 500 and d["error"]["status"] == "INTERNAL"),
])
def test_processor_down_fails_closed_with_a_clear_error(tmp_path: Path, mock: Mock, path: str,
                                                        check) -> None:
    gw = Gateway(tmp_path, gateway_config(), mock=mock, start_server=False)
    try:
        before = mock.last()
        r = httpx.post(f"{gw.url}{path}", json=CHAT, timeout=30)
        assert r.status_code == 500
        doc = r.json()
        assert check(doc), doc
        assert "gateway error" in json.dumps(doc)
        assert mock.last() == before       # fail closed: nothing reached the provider
    finally:
        gw.close()


BIG = "x" * (20 * 1024 * 1024)


@pytest.mark.parametrize(("path", "big", "check"), [
    ("/anthropic/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 10,
                                "messages": [{"role": "user", "content": BIG}]},
     lambda d: d == {"type": "error", "error": {"type": "request_too_large", "message": ANY}}),
])
def test_envoys_own_errors_carry_the_type_their_status_calls_for(
        gateway: Gateway, path: str, big: dict[str, Any], check: Any) -> None:
    """Envoy's refusal of a body past its buffer limit, in the provider's format with the
    error type the processor's own 413 has (it was api_error, a server error, for every
    status; Google's status, UNAVAILABLE for every status, follows the same table: see the
    processor-down test above, a 500 that is INTERNAL)."""
    r = httpx.post(f"{gateway.url}{path}", json=big, timeout=30)
    assert r.status_code == 413, r.text[:300]
    assert check(r.json()), r.json()


def test_processor_down_fails_open_when_configured(tmp_path: Path, mock: Mock) -> None:
    gw = Gateway(tmp_path, gateway_config(), mock=mock, start_server=False, fail_open=True)
    try:
        r = httpx.post(f"{gw.url}/openai/v1/chat/completions", json=CHAT, timeout=30)
        assert r.status_code == 200
        assert r.text.rstrip().endswith("data: [DONE]")
    finally:
        gw.close()


def test_processor_killed_mid_stream_ends_the_stream_then_recovers(own_gateway: Gateway) -> None:
    gw = own_gateway
    assert gw.server is not None
    received = b""
    with httpx.Client(timeout=30) as client:
        started = time.monotonic()
        with pytest.raises(httpx.HTTPError):  # a reset, never a silent hang or clean end
            with client.stream("POST", f"{gw.url}/mode-streamed/transform/v1/chat/completions",
                               json=CHAT, headers=SLOW) as r:
                assert r.status_code == 200
                for chunk in r.iter_raw():
                    received += chunk
                    if gw.server.proc.alive():
                        gw.server.proc.signal(signal.SIGKILL)
        assert time.monotonic() - started < 20
    assert b"[DONE]" not in received
    gw.restart_server()
    r = httpx.post(f"{gw.url}/mode-streamed/transform/v1/chat/completions", json=CHAT,
                   timeout=30)
    assert r.status_code == 200
    assert r.text.rstrip().endswith("DATA: [DONE]")


def test_sigterm_lets_in_flight_streams_finish(own_gateway: Gateway) -> None:
    gw = own_gateway
    assert gw.server is not None
    received = b""
    with httpx.Client(timeout=30) as client, client.stream(
            "POST", f"{gw.url}/mode-duplex/transform/v1/chat/completions", json=CHAT,
            headers=SLOW) as r:
        for chunk in r.iter_raw():
            if not received:
                gw.server.proc.signal(signal.SIGTERM)
            received += chunk
    assert received.rstrip().endswith(b"DATA: [DONE]")
    text = "".join(json.loads(line[6:].decode().lower())["choices"][0]["delta"]
                   .get("content", "") for line in received.splitlines()
                   if line.startswith(b"DATA: {") and b'"CHOICES":[{' in line)
    assert text == TEXT.lower()          # every piece arrived, upper-cased by the policy
    assert gw.server.proc.popen.wait(15) == 0
    assert "stopping: 1 streams in flight" in gw.server.proc.log()


def test_upstream_reset_mid_stream(gateway: Gateway) -> None:
    assert gateway.server is not None
    with httpx.Client(timeout=30) as client:
        with pytest.raises(httpx.HTTPError):
            with client.stream("POST", f"{gateway.url}/mode-streamed/transform/v1/chat/"
                               "completions", json=CHAT,
                               headers={**SLOW, "x-mock-fail-after": "700"}) as r:
                body = b"".join(r.iter_raw())
                assert b"[DONE]" not in body
    stats = gateway.server.wait_idle()
    assert stats["streams_active"] == 0 and stats["exchanges_alive"] == 0


@pytest.mark.parametrize("mode", ["streamed", "duplex"])
def test_client_disconnect_mid_stream_frees_request_state(gateway: Gateway, mode: str) -> None:
    assert gateway.server is not None
    total = gateway.server.stats()["streams_total"]
    with httpx.Client(timeout=30) as client, client.stream(
            "POST", f"{gateway.url}/mode-{mode}/transform/v1/chat/completions", json=CHAT,
            headers={**SLOW, "x-mock-delay-ms": "200"}) as r:
        assert r.status_code == 200, r.read()
        chunks = r.iter_raw()   # keep it referenced: a collected iterator closes the response
        assert next(chunks)
        during = gateway.server.stats()
        assert during["streams_active"] >= 1 and during["exchanges_alive"] >= 1, (total, during)
    # the connection is closed mid-stream here
    stats = gateway.server.wait_idle()
    assert stats["streams_total"] > total
    assert stats["streams_active"] == 0 and stats["exchanges_alive"] == 0
