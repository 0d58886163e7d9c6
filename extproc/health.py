"""The standard gRPC health service (`grpc.health.v1.Health`), with a shutdown that is final.

Check and Watch as the protocol says (`grpc_health` supplies the messages). `shutdown()`
turns every service NOT_SERVING for good, and each Watch stream ends once it has sent that:
an open watch is an RPC like any other, and `grpc.aio.Server.stop(grace)` waits for every RPC
to end, so a watcher would otherwise hold the server for the whole grace period after the
last ext_proc stream is done (grpc_health's own servicer keeps watches open).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


class Health(health_pb2_grpc.HealthServicer):
    """Health of a fixed set of services ("" is the server as a whole)."""

    def __init__(self, services: Iterable[str], status: int = NOT_SERVING) -> None:
        self._status = dict.fromkeys(services, status)
        self._version = 0                  # bumped on every change: watchers never miss one
        self._closing = False
        self._changed = asyncio.Condition()

    @property
    def closing(self) -> bool:
        return self._closing

    def serving(self, service: str = "") -> bool:
        """Whether `service` is SERVING now (what `/healthz` on the admin port answers, for
        probes that cannot speak gRPC over the port's mutual TLS)."""
        return self._status.get(service) == SERVING

    async def set_all(self, status: int) -> None:
        """Give every service `status` (ignored once `shutdown()` ran)."""
        if not self._closing:
            await self._update(status)

    async def shutdown(self) -> None:
        """NOT_SERVING for every service, for good; every Watch sends it and ends."""
        self._closing = True
        await self._update(NOT_SERVING)

    async def _update(self, status: int) -> None:
        async with self._changed:
            for service in self._status:
                self._status[service] = status
            self._version += 1
            self._changed.notify_all()

    async def Check(self, request: health_pb2.HealthCheckRequest,
                    context: grpc.aio.ServicerContext) -> health_pb2.HealthCheckResponse:
        status = self._status.get(request.service)
        if status is None:
            await context.abort(grpc.StatusCode.NOT_FOUND,
                                f"unknown service {request.service!r}")
        return health_pb2.HealthCheckResponse(status=status)

    async def Watch(self, request: health_pb2.HealthCheckRequest,
                    context: grpc.aio.ServicerContext) -> None:
        seen, sent = -1, None
        while True:
            async with self._changed:
                while self._version == seen:
                    await self._changed.wait()
                seen = self._version
                status = self._status.get(request.service, SERVICE_UNKNOWN)
                closing = self._closing
            if status != sent:             # written outside the lock: a slow reader
                await context.write(health_pb2.HealthCheckResponse(status=status))
                sent = status              # delays nobody else
            if closing:
                return
