"""The admin HTTP port of one serving process (`/metrics`, `/stats`, `/healthz`, `/spend`),
and who may read `/spend`.

`/metrics` (Prometheus), `/stats` (route names and counters) and `/healthz` (200 while the
gRPC health service says SERVING, else 503: for probes that cannot reach a mutual-TLS gRPC
port) are open to whoever reaches the port, as scrapers and kubelet probes need.
`/spend` (JSON: each spend budget key's spend and remaining amount in its current window,
from this process's memory store or from Redis; `extproc spend` reads it) names every
budget's subject, API key id, client IP and `claim:`/`header:` values, so it is answered only
(`spend_allowed`):

- with an admin token (`--admin-token-file` / EXTPROC_ADMIN_TOKEN_FILE, `read_token`), to a
  request carrying `Authorization: Bearer <token>`, from every peer, loopback included
  (else 401);
- without one, to a loopback peer (127.0.0.1, ::1, ::ffff:127.0.0.1) (else 403).

The `--workers` supervisor's own admin server (`extproc.workers`) applies the same rule.

The port shares its process, and so its file descriptors, with the gRPC server: it holds at
most `MAX_CONNECTIONS` connections at once and `MAX_PER_PEER` from one address (one more is
closed as it opens: one peer holding its places never takes the kubelet's or Prometheus's;
`MAX_CONNECTIONS / MAX_PER_PEER` peers together could),
and closes a connection that has sent nothing for `IDLE_S` seconds (before its first
request, within one, or between two), so that connections left open to it cannot starve the
gRPC port of descriptors.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiohttp import web

    from .health import Health
    from .servicer import Processor

TOKEN_ENV = "EXTPROC_ADMIN_TOKEN_FILE"
_LOOPBACK = frozenset({ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")})
MIN_TOKEN_CHARS = 16
_HOW = ("/spend names budget subjects and is served only to loopback peers unless the "
        "server is given an admin token (--admin-token-file or EXTPROC_ADMIN_TOKEN_FILE)")
REFUSALS: dict[int, str] = {
    401: "/spend needs the server's admin token: send 'Authorization: Bearer <token>' "
         "(extproc spend --admin URL --admin-token-file PATH, or EXTPROC_ADMIN_TOKEN_FILE)",
    403: f"{_HOW}; read it from inside the host or pod (e.g. kubectl exec deploy/extproc -- "
         "extproc spend --admin http://127.0.0.1:9464), or give the server a token",
}


class AdminTokenError(ValueError):
    """An admin token file that cannot be used (a startup error: exit 2)."""


def token_path(flag: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The admin token file: `--admin-token-file`, else EXTPROC_ADMIN_TOKEN_FILE, else none."""
    env = os.environ if environ is None else environ
    return flag or env.get(TOKEN_ENV) or None


def read_token(path: str) -> str:
    """The token in `path`, stripped of surrounding whitespace; AdminTokenError when the file
    cannot be read or the token is empty, shorter than MIN_TOKEN_CHARS or not sendable in a
    header (printable ASCII without spaces). The message never contains the token."""
    try:
        with open(path, "rb") as f:
            raw = f.read(64 * 1024 + 1)
    except OSError as exc:
        raise AdminTokenError(f"admin token file {path}: cannot be read "
                              f"({exc.strerror or type(exc).__name__})") from None
    token = raw.strip()
    if len(raw) > 64 * 1024:
        raise AdminTokenError(f"admin token file {path}: larger than 64 KiB")
    if not token:
        raise AdminTokenError(f"admin token file {path}: empty")
    if not all(0x21 <= b <= 0x7e for b in token):
        raise AdminTokenError(f"admin token file {path}: the token must be printable ASCII "
                              "without spaces (it travels in an HTTP header)")
    if len(token) < MIN_TOKEN_CHARS:
        raise AdminTokenError(f"admin token file {path}: the token has {len(token)} "
                              f"characters, fewer than {MIN_TOKEN_CHARS} (make one with "
                              "e.g. `openssl rand -hex 32`)")
    return token.decode("ascii")


def is_loopback(peer: str | None) -> bool:
    """Whether a peer address is the host's own: 127.0.0.1, ::1 or ::ffff:127.0.0.1. Not the
    rest of 127.0.0.0/8: a mesh sidecar delivers the traffic it forwards from such addresses
    (Istio's from 127.0.0.6), which would make every peer it forwards loopback."""
    if not peer:
        return False
    try:
        ip = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip in _LOOPBACK


def spend_allowed(peer: str | None, authorization: str | None, token: str | None) -> int:
    """The answer `/spend` gives this request: 200 (served), 401 (a token is configured and
    the request does not carry it) or 403 (no token configured, a peer off loopback)."""
    if token is None:
        return 200 if is_loopback(peer) else 403
    scheme, _, given = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return 401
    return 200 if hmac.compare_digest(given.strip().encode("utf-8", "replace"),
                                      token.encode()) else 401


def refusal(status: int) -> tuple[dict[str, str], bytes]:
    """The headers and JSON body of a refused `/spend` (`spend_allowed`'s 401 or 403)."""
    import json
    headers = {"content-type": "application/json"}
    if status == 401:
        headers["www-authenticate"] = 'Bearer realm="extproc-admin"'
    return headers, json.dumps({"error": REFUSALS[status]}).encode()


#: the most connections the admin port holds at once, and from one peer address (scrapers,
#: probes and `extproc spend` each need a few; found by review: one cap for all let a peer
#: holding every place lock the kubelet's probes out)
MAX_CONNECTIONS = 256
MAX_PER_PEER = 16
#: seconds a connection may sit idle, before its first request or between two
IDLE_S = 10.0


class _Places:
    """The admin connections open: in all and by peer address."""

    def __init__(self, most: int, per_peer: int) -> None:
        self.most, self.per_peer = most, per_peer
        self.total = 0
        self.by_peer: dict[str, int] = {}

    def take(self, peer: str) -> bool:
        if self.total >= self.most or self.by_peer.get(peer, 0) >= self.per_peer:
            return False
        self.total += 1
        self.by_peer[peer] = self.by_peer.get(peer, 0) + 1
        return True

    def give(self, peer: str) -> None:
        self.total -= 1
        left = self.by_peer[peer] - 1
        if left:
            self.by_peer[peer] = left
        else:
            del self.by_peer[peer]


class _Watched(asyncio.Protocol):
    """aiohttp's handler of one connection, when it has a place (else closed as it opens),
    closed once the peer has sent nothing for `idle_s` seconds (aiohttp's own keep-alive
    timeout runs only between requests in the versions before 3.14)."""

    def __init__(self, inner: asyncio.Protocol, places: _Places, idle_s: float) -> None:
        self.inner = inner
        self.places = places
        self.idle_s = idle_s
        self.peer: str | None = None   # set once it holds a place
        self.transport: asyncio.BaseTransport | None = None
        self.timer: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(self.idle_s, self._idle)

    def _idle(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        name = transport.get_extra_info("peername")
        peer = str(name[0]) if isinstance(name, tuple) and name else "?"
        if not self.places.take(peer):
            transport.close()
            return
        self.peer, self.transport = peer, transport
        self._arm()
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.peer is not None:
            self._arm()
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.peer is not None else None

    def pause_writing(self) -> None:
        if self.peer is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.peer is not None:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        peer, self.peer, self.transport = self.peer, None, None
        if peer is not None:
            self.places.give(peer)
            self.inner.connection_lost(exc)


def capped(server: web.Server, most: int, per_peer: int,
           idle_s: float) -> Callable[[], asyncio.BaseProtocol]:
    """`server`'s protocol factory, for at most `most` open connections and `per_peer`
    from one address, each closed once idle for `idle_s` seconds."""
    places = _Places(most, per_peer)

    def factory() -> asyncio.BaseProtocol:
        return _Watched(server(), places, idle_s)
    return factory


class AdminServer:
    """The admin port being served: its `addresses`; `cleanup` stops it."""

    def __init__(self, runner: web.AppRunner, listener: asyncio.Server) -> None:
        self.runner = runner
        self.listener = listener

    @property
    def addresses(self) -> list[Any]:
        return [sock.getsockname() for sock in self.listener.sockets]

    async def cleanup(self) -> None:
        self.listener.close()
        await self.runner.cleanup()   # (closes the connections still open)


async def start(processor: Processor, health: Health, host: str, port: int,
                token: str | None = None, *, most: int = MAX_CONNECTIONS,
                per_peer: int = MAX_PER_PEER, idle_s: float = IDLE_S) -> AdminServer:
    """Serve the admin endpoints on host:port until the returned server is cleaned up."""
    from aiohttp import web

    from . import metrics

    async def stats(_: web.Request) -> web.Response:
        return web.json_response(processor.stats())

    async def healthz(_: web.Request) -> web.Response:
        # the gRPC health service's answer: 503 before the server serves and once it drains
        if health.serving():
            return web.Response(text="ok\n")
        return web.Response(status=503, text="not serving\n")

    async def spend(request: web.Request) -> web.Response:
        status = spend_allowed(_peer(request), request.headers.get("Authorization"), token)
        if status != 200:
            headers, body = refusal(status)
            return web.Response(status=status, body=body, headers=headers)
        from .limits.settings import configured, spend_budgets
        from .limits.store import StoreUnavailable
        try:
            found: dict[str, Any] = await spend_budgets(processor.config.routes)
            found["configured"] = configured(processor.config.routes)
            return web.json_response(found)
        except StoreUnavailable as exc:
            return web.json_response({"error": str(exc)}, status=503)

    async def prometheus(_: web.Request) -> web.Response:
        return web.Response(body=await metrics.render_async(),
                            headers={"content-type": metrics.CONTENT_TYPE})

    app = web.Application()
    app.router.add_get("/stats", stats)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/spend", spend)
    app.router.add_get("/metrics", prometheus)
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=idle_s)
    await runner.setup()
    assert runner.server is not None
    listener = await asyncio.get_running_loop().create_server(
        capped(runner.server, most, per_peer, idle_s), host, port, reuse_address=True)
    return AdminServer(runner, listener)


def _peer(request: web.Request) -> str | None:
    """The TCP peer's address (the socket's, never a header's)."""
    transport = request.transport
    peername = transport.get_extra_info("peername") if transport is not None else None
    return peername[0] if isinstance(peername, tuple) and peername else None
