"""The admin port shares its process's file descriptors with the gRPC server (left alone in
an earlier note, now bounded): it holds at most `most` connections at once and `per_peer`
from one address, closing one more as it opens, and closes a connection that has sent
nothing for `idle_s` seconds, while the port keeps answering; a peer holding all its places
never locks another peer (the kubelet's probes) out (found by the review of the first cap)."""

from __future__ import annotations

import asyncio

from extproc import admin, loader
from extproc.health import SERVING, Health
from extproc.servicer import SERVICE, Processor


async def _server(most: int, idle_s: float, per_peer: int = 64) -> admin.AdminServer:
    config = loader.parse({"routes": [{"name": "chat", "provider": "openai", "auth": "none"}]})
    health = Health(("", SERVICE))
    await health.set_all(SERVING)
    return await admin.start(Processor(config), health, "127.0.0.1", 0, most=most,
                             per_peer=per_peer, idle_s=idle_s)


async def _closed_by_peer(reader: asyncio.StreamReader, within: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), within) == b""
    except (TimeoutError, ConnectionResetError):
        return False


async def _healthz(port: int, source: str = "127.0.0.1") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await writer.drain()
    data = await reader.read()
    writer.close()
    return data


async def test_connections_past_the_cap_are_closed_as_they_open() -> None:
    server = await _server(most=4, idle_s=30)
    port = server.addresses[0][1]
    try:
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4)]
        await asyncio.sleep(0.1)
        extra, extra_writer = await asyncio.open_connection("127.0.0.1", port)
        assert await _closed_by_peer(extra, 2.0)                 # the fifth: closed at once
        for reader, _ in held:                                   # the four stay open
            assert not await _closed_by_peer(reader, 0.05)
        for _, writer in held:
            writer.close()
        extra_writer.close()
        await asyncio.sleep(0.1)
        assert (await _healthz(port)).startswith(b"HTTP/1.1 200")   # room again
    finally:
        await server.cleanup()


async def test_a_connection_that_sends_nothing_is_closed_when_idle() -> None:
    server = await _server(most=4, idle_s=0.5)
    port = server.addresses[0][1]
    try:
        silent, silent_writer = await asyncio.open_connection("127.0.0.1", port)
        partial, partial_writer = await asyncio.open_connection("127.0.0.1", port)
        partial_writer.write(b"GET /healthz HTTP/1.1\r\nHost")   # a request never finished
        await partial_writer.drain()
        assert await _closed_by_peer(silent, 5.0)
        assert await _closed_by_peer(partial, 5.0)
        silent_writer.close()
        partial_writer.close()
        assert (await _healthz(port)).startswith(b"HTTP/1.1 200")
    finally:
        await server.cleanup()


async def test_a_peer_reopening_its_connections_cannot_lock_another_out() -> None:
    """One peer (127.0.0.1) holds every place it may have and opens each again as soon as it
    is closed; another (127.0.0.2, the kubelet) is answered every time."""
    server = await _server(most=8, idle_s=1.0, per_peer=4)
    port = server.addresses[0][1]

    async def hold() -> None:   # one place: reopened as soon as it is closed
        while True:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await reader.read()          # returns once the server closes it
            writer.close()

    holders = [asyncio.create_task(hold()) for _ in range(6)]
    try:
        await asyncio.sleep(0.3)
        for _ in range(4):
            assert (await _healthz(port, "127.0.0.2")).startswith(b"HTTP/1.1 200")
            await asyncio.sleep(0.3)
    finally:
        for task in holders:
            task.cancel()
        await asyncio.gather(*holders, return_exceptions=True)
        await server.cleanup()


def test_the_defaults_leave_room_for_scrapers_and_probes() -> None:
    assert admin.MAX_CONNECTIONS >= 64 and admin.MAX_PER_PEER >= 8 and admin.IDLE_S >= 5
