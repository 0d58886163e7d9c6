"""Runs the gRPC server: ext_proc + gRPC health, an admin HTTP port, signals, reloads.

SIGTERM/SIGINT: health turns NOT_SERVING, the server stops accepting, in-flight streams get
`server.grace_period_s` to finish, then the process exits. SIGHUP reloads the config file; an
invalid file leaves the running config in place and logs every error. With `--workers N` the
command runs `workers.py` instead (N processes on one port, one admin port for all, each
running this module). `--watch-config` also reloads when the file changes (polled once a
second: no extra dependency, works on every filesystem and in containers).

The admin port serves `/metrics` (Prometheus), `/stats` (JSON) and `/healthz`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import time
from dataclasses import dataclass

import grpc
from aiohttp import web
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from . import accesslog, httpclient, loader, metrics
from . import config as cfgmod
from .auth.settings import warm_up
from .schema import ConfigError
from .servicer import SERVICE, Processor

log = logging.getLogger("extproc.server")


@dataclass
class ServeOptions:
    config_path: str
    addresses: tuple[str, ...] = ("127.0.0.1:50051",)
    admin_port: int | None = None
    admin_host: str = "127.0.0.1"
    workers: int = 1
    watch_config: bool = False


def grpc_options(config: cfgmod.Config) -> list[tuple[str, int]]:
    size = config.server.grpc_max_message_bytes
    return [("grpc.max_receive_message_length", size),
            ("grpc.max_send_message_length", size),
            ("grpc.so_reuseport", 1),
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.keepalive_permit_without_calls", 1)]


async def serve(opts: ServeOptions, ready: asyncio.Event | None = None) -> None:
    """Serve until SIGTERM/SIGINT; then drain within the grace period."""
    config = loader.load(opts.config_path)
    metrics.CONFIG_LOADED.set(time.time())
    processor = Processor(config)
    server = grpc.aio.server(options=grpc_options(config))
    server.add_generic_rpc_handlers((processor.handler(),))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for address in opts.addresses:
        server.add_insecure_port(address)
    await server.start()
    for service in ("", SERVICE):
        await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)

    runner = None
    if opts.admin_port is not None:
        runner = await _start_admin(processor, opts.admin_host, opts.admin_port)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: _reload(processor, opts.config_path))
    watcher = loop.create_task(_watch(processor, opts.config_path)) \
        if opts.watch_config else None
    warm_up()
    # What exists now (modules, protobuf descriptors, the config) lives as long as the
    # process: out of the cyclic GC's sight, a full collection walks only what requests
    # create, and pauses the event loop for a few ms instead of about 20 ms.
    gc.collect()
    gc.freeze()
    log.info("serving ext_proc on %s (routes: %s, pid %d)", ", ".join(opts.addresses),
             ", ".join(sorted(config.routes)), os.getpid())
    if ready is not None:
        ready.set()
    await stop.wait()
    if watcher is not None:
        watcher.cancel()

    grace = processor.config.server.grace_period_s
    log.info("stopping: %d streams in flight, grace period %.1fs",
             processor.streams_active, grace)
    for service in ("", SERVICE):
        await health_servicer.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
    await server.stop(grace)
    await processor.drain(5.0)
    await httpclient.close()
    if runner is not None:
        await runner.cleanup()
    accesslog.flush()
    log.info("stopped")


def _reload(processor: Processor, path: str) -> bool:
    """Load the file and swap it in for new streams (streams in flight keep the config they
    started with); an invalid file leaves the running config and logs every error."""
    try:
        processor.config = loader.load(path)
    except ConfigError as exc:
        metrics.RELOADS.labels("refused").inc()
        log.error("config reload refused, the running config stays: %s",
                  "; ".join(exc.errors), extra={"fields": {"errors": exc.errors}})
        return False
    metrics.RELOADS.labels("ok").inc()
    metrics.CONFIG_LOADED.set(time.time())
    warm_up()
    log.info("config reloaded from %s (routes: %s)", path,
             ", ".join(sorted(processor.config.routes)))
    return True


def _fingerprint(path: str) -> tuple[float, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime, st.st_size, st.st_ino)


async def _watch(processor: Processor, path: str, interval: float = 1.0) -> None:
    """Reload when the config file changes (a rewrite, or a rename over it as editors and
    Kubernetes ConfigMaps do); a file caught half-written is refused, then retried when
    it changes again."""
    last = _fingerprint(path)
    while True:
        await asyncio.sleep(interval)
        now = _fingerprint(path)
        if now is not None and now != last:
            last = now
            log.info("config file %s changed: reloading", path)
            _reload(processor, path)


async def _start_admin(processor: Processor, host: str, port: int) -> web.AppRunner:
    async def stats(_: web.Request) -> web.Response:
        return web.json_response(processor.stats())

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def prometheus(_: web.Request) -> web.Response:
        return web.Response(body=metrics.render(),
                            headers={"content-type": metrics.CONTENT_TYPE})

    app = web.Application()
    app.router.add_get("/stats", stats)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", prometheus)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def run(opts: ServeOptions) -> int:
    """Blocking entry point of one serving process (`extproc serve`, or one of its
    `--workers`: `extproc.workers` supervises them and calls this in each)."""
    _install_uvloop()
    try:
        asyncio.run(serve(opts))
    except ConfigError as exc:
        for line in exc.errors:
            log.error("config: %s", line)
        return 2
    return 0


def _install_uvloop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop
        uvloop.install()
