"""Who may read `/spend` (it names every budget's subject, API key id and client IP): loopback
peers, or with an admin token only requests bearing it; on the admin port a server starts
(`extproc.admin.start`, a real aiohttp server) and on the `--workers` supervisor's."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from extproc import admin, loader, workers
from extproc.admin import AdminTokenError, is_loopback, read_token, spend_allowed
from extproc.health import SERVING, Health
from extproc.servicer import SERVICE, Processor

TOKEN = "s3cret-admin-token-0123456789"


def _off_loopback_address() -> str | None:
    """An IPv4 address of this machine that is not loopback (a peer seen from it is not)."""
    for target in ("192.0.2.1", "10.255.255.255", "8.8.8.8"):
        with contextlib.suppress(OSError), socket.socket(socket.AF_INET,
                                                         socket.SOCK_DGRAM) as s:
            s.connect((target, 9))
            address = s.getsockname()[0]
            if not is_loopback(address) and address != "0.0.0.0":
                return address
    return None


def _get(host: str, port: int, path: str, headers: dict[str, str] | None = None
         ) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


@pytest.mark.parametrize(("peer", "loopback"), [
    ("127.0.0.1", True), ("::1", True), ("::ffff:127.0.0.1", True),
    # the rest of 127/8 is where a mesh sidecar forwards from (Istio: 127.0.0.6)
    ("127.0.0.6", False), ("127.8.9.10", False), ("::ffff:127.0.0.6", False),
    ("192.0.2.2", False), ("10.0.0.1", False), ("::ffff:10.0.0.1", False), ("fd00::2", False),
    ("0.0.0.0", False), ("", False), (None, False), ("not-an-ip", False)])
def test_loopback_peers(peer: str | None, loopback: bool) -> None:
    assert is_loopback(peer) is loopback


def test_without_a_token_only_loopback_peers_read_spend() -> None:
    assert spend_allowed("127.0.0.1", None, None) == 200
    assert spend_allowed("::1", "Bearer whatever", None) == 200
    assert spend_allowed("10.1.2.3", None, None) == 403
    assert spend_allowed("10.1.2.3", f"Bearer {TOKEN}", None) == 403


@pytest.mark.parametrize("peer", ["127.0.0.1", "::1", "10.1.2.3"])
def test_with_a_token_every_peer_must_send_it(peer: str) -> None:
    assert spend_allowed(peer, None, TOKEN) == 401
    assert spend_allowed(peer, "", TOKEN) == 401
    assert spend_allowed(peer, TOKEN, TOKEN) == 401                 # no scheme
    assert spend_allowed(peer, f"Basic {TOKEN}", TOKEN) == 401
    assert spend_allowed(peer, f"Bearer {TOKEN}x", TOKEN) == 401
    assert spend_allowed(peer, f"Bearer {TOKEN[:-1]}", TOKEN) == 401
    assert spend_allowed(peer, "Bearer ", TOKEN) == 401
    assert spend_allowed(peer, "Bearer t\u00f6ken", TOKEN) == 401
    assert spend_allowed(peer, f"Bearer {TOKEN}", TOKEN) == 200
    assert spend_allowed(peer, f"bearer  {TOKEN} ", TOKEN) == 200


def test_a_token_file_is_read_stripped(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(f"\n  {TOKEN}\n")
    assert read_token(str(path)) == TOKEN


@pytest.mark.parametrize(("content", "says"), [
    ("", "empty"), (" \n\t", "empty"), ("short-token", "fewer than 16"),
    ("a token with spaces inside it", "without spaces"), ("t\u00f6ken-0123456789abc", "ASCII")])
def test_an_unusable_token_file_is_refused(tmp_path: Path, content: str, says: str) -> None:
    path = tmp_path / "token"
    path.write_text(content)
    with pytest.raises(AdminTokenError, match=says) as err:
        read_token(str(path))
    assert str(path) in str(err.value)
    if content.strip():
        assert content.strip() not in str(err.value)


def test_a_missing_token_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AdminTokenError, match="cannot be read"):
        read_token(str(tmp_path / "nothing-here"))


def test_the_flag_wins_over_the_environment() -> None:
    env = {admin.TOKEN_ENV: "/from/env"}
    assert admin.token_path("/from/flag", env) == "/from/flag"
    assert admin.token_path(None, env) == "/from/env"
    assert admin.token_path(None, {}) is None


async def _admin_server(host: str, token: str | None) -> admin.AdminServer:
    config = loader.parse({"routes": [{"name": "chat", "provider": "openai", "auth": "none"}]})
    health = Health(("", SERVICE))
    await health.set_all(SERVING)
    return await admin.start(Processor(config), health, host, 0, token)


async def test_a_servers_spend_answers_loopback_without_a_token() -> None:
    runner = await _admin_server("127.0.0.1", None)
    try:
        port = runner.addresses[0][1]
        status, _, body = await asyncio.to_thread(_get, "127.0.0.1", port, "/spend")
        assert status == 200 and json.loads(body)["configured"] == 0
    finally:
        await runner.cleanup()


async def test_a_servers_spend_with_a_token_asks_it_of_loopback_too() -> None:
    runner = await _admin_server("127.0.0.1", TOKEN)
    try:
        port = runner.addresses[0][1]
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"},
                        {"Authorization": f"Basic {TOKEN}"}):
            status, got, body = await asyncio.to_thread(_get, "127.0.0.1", port, "/spend", headers)
            assert status == 401, headers
            assert got["www-authenticate"].startswith("Bearer")
            assert "admin token" in json.loads(body)["error"] and TOKEN.encode() not in body
        status, _, body = await asyncio.to_thread(_get, "127.0.0.1", port, "/spend",
                                           {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and "budgets" in json.loads(body)
        for path in ("/metrics", "/stats", "/healthz"):   # open as before
            assert (await asyncio.to_thread(_get, "127.0.0.1", port, path))[0] == 200, path
    finally:
        await runner.cleanup()


async def test_a_servers_spend_refuses_a_peer_off_loopback() -> None:
    address = _off_loopback_address()
    if address is None:
        pytest.skip("this machine has no address off loopback")
    runner = await _admin_server("0.0.0.0", None)
    try:
        port = runner.addresses[0][1]
        status, _, body = await asyncio.to_thread(_get, address, port, "/spend")
        assert status == 403
        assert "loopback" in json.loads(body)["error"]
        for path in ("/metrics", "/stats", "/healthz"):   # scrapers and probes still reach
            assert (await asyncio.to_thread(_get, address, port, path))[0] == 200, path
        assert (await asyncio.to_thread(_get, "127.0.0.1", port, "/spend"))[0] == 200
    finally:
        await runner.cleanup()
    runner = await _admin_server("0.0.0.0", TOKEN)   # with a token: from anywhere, with it
    try:
        port = runner.addresses[0][1]
        assert (await asyncio.to_thread(_get, address, port, "/spend"))[0] == 401
        assert (await asyncio.to_thread(_get, address, port, "/spend",
                                 {"Authorization": f"Bearer {TOKEN}"}))[0] == 200
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def _supervisor(host: str, token: str | None) -> Iterator[int]:
    server = workers._Admin((host, 0), lambda: [], lambda: [], token)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_the_supervisors_spend_follows_the_same_rule() -> None:
    with _supervisor("127.0.0.1", None) as port:
        status, _, body = _get("127.0.0.1", port, "/spend")
        assert status == 200 and json.loads(body)["budgets"] == []
    with _supervisor("127.0.0.1", TOKEN) as port:
        status, got, body = _get("127.0.0.1", port, "/spend")
        assert status == 401 and got["www-authenticate"].startswith("Bearer")
        assert "admin token" in json.loads(body)["error"]
        assert _get("127.0.0.1", port, "/spend", {"Authorization": "Bearer nope"})[0] == 401
        assert _get("127.0.0.1", port, "/spend", {"Authorization": f"Bearer {TOKEN}"})[0] \
            == 200
    address = _off_loopback_address()
    if address is None:
        pytest.skip("this machine has no address off loopback")
    with _supervisor("0.0.0.0", None) as port:
        status, _, body = _get(address, port, "/spend")
        assert status == 403 and "loopback" in json.loads(body)["error"]
        assert _get(address, port, "/stats")[0] == 200
