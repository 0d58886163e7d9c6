"""The gRPC health service (extproc.health) over a real grpc.aio server: Check and Watch as
the protocol says, and a shutdown that reports NOT_SERVING at once, for good, and ends the
watches so that `server.stop(grace)` is not held for the grace period by a watcher."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from extproc.health import NOT_SERVING, SERVING, Health

Req = health_pb2.HealthCheckRequest


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[tuple[Health, grpc.aio.Server, health_pb2_grpc.HealthStub]]:
    health = Health(("", "svc"))
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield health, server, health_pb2_grpc.HealthStub(channel)
    await channel.close()
    await server.stop(None)


async def test_check_and_watch() -> None:
    async with serving() as (health, _, stub):
        await check_and_watch(health, stub)


async def check_and_watch(health: Health, stub: health_pb2_grpc.HealthStub) -> None:
    assert (await stub.Check(Req(service="svc"))).status == NOT_SERVING   # until told
    watch = stub.Watch(Req(service=""))
    assert (await watch.read()).status == NOT_SERVING
    await health.set_all(SERVING)
    assert (await watch.read()).status == SERVING
    assert (await stub.Check(Req())).status == SERVING
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Check(Req(service="nope"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    unknown = stub.Watch(Req(service="nope"))
    assert (await unknown.read()).status == health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
    watch.cancel()
    unknown.cancel()


async def test_shutdown_is_at_once_final_and_ends_every_watch() -> None:
    async with serving() as (health, server, stub):
        await shutdown_ends_watches(health, server, stub)


async def shutdown_ends_watches(health: Health, server: grpc.aio.Server,
                                stub: health_pb2_grpc.HealthStub) -> None:
    await health.set_all(SERVING)
    watches = [stub.Watch(Req(service=s)) for s in ("", "svc", "")]
    for w in watches:
        assert (await w.read()).status == SERVING
    await health.shutdown()
    assert (await stub.Check(Req())).status == NOT_SERVING
    for w in watches:
        assert (await asyncio.wait_for(w.read(), 2)).status == NOT_SERVING
        assert await asyncio.wait_for(w.read(), 2) is grpc.aio.EOF       # and it ends
        assert await w.code() == grpc.StatusCode.OK
    await health.set_all(SERVING)                                         # ignored now
    assert (await stub.Check(Req(service="svc"))).status == NOT_SERVING
    late = stub.Watch(Req())                                               # one more: told
    assert (await late.read()).status == NOT_SERVING                       # and ended
    assert await late.read() is grpc.aio.EOF
    started = time.monotonic()
    await server.stop(30)                  # no RPC left: returns at once, not after 30 s
    assert time.monotonic() - started < 5
