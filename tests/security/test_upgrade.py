"""A WebSocket upgrade on a provider route, through the real Envoy (found by the deny audit):
the Realtime API's transport, which the gateway does not serve. Envoy refuses the upgrade
itself (its routes allow none), so the processor sees only the reply; it used to assert a
route it never bound, answer the gateway's 500 "internal error" and log a traceback. Envoy's
own refusal now reaches the client (403, `upgrade_failed`, JSON), nothing is forwarded, and
the processor logs no error."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.harness import Gateway, Mock

pytestmark = pytest.mark.envoy

UPGRADE = (b"GET /openai/v1/realtime?model=gpt-realtime HTTP/1.1\r\nHost: x\r\n"
           b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    config = {"guards": {"pii": {"detectors": ["email"]}},
              "routes": [{"name": "openai", "provider": "openai", "guards": ["pii"]}]}
    gateway = Gateway(tmp_path_factory.mktemp("upgrade"), config, mock=mock)
    yield gateway
    gateway.close()


def upgrade(gw: Gateway) -> bytes:
    """The whole answer to a WebSocket upgrade request (Envoy closes the connection)."""
    answer = b""
    with socket.create_connection(("127.0.0.1", gw.envoy.port), timeout=10) as s:
        s.sendall(UPGRADE)
        while chunk := s.recv(65536):
            answer += chunk
    return answer


def test_an_upgrade_gets_envoys_clear_refusal(gw: Gateway) -> None:
    httpx.get(gw.mock.url + "/reset")    # recorded as the mock's last request
    answer = upgrade(gw)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 403"), answer
    assert b"application/json" in head.lower()
    chunk = body.split(b"\r\n")[1] if b"transfer-encoding: chunked" in head.lower() else body
    assert json.loads(chunk)["error"]["code"] == "upgrade_failed"
    last = gw.mock.last()
    assert last is not None and last["path"] == "/reset"     # nothing was forwarded
    assert gw.server is not None
    log = gw.server.proc.log()
    assert "AssertionError" not in log and "Traceback" not in log
    assert "policy failed" not in log
