"""Runs the gRPC server: ext_proc + gRPC health, an admin HTTP port, signals, reloads.

SIGTERM/SIGINT: the health service turns NOT_SERVING first, then the server stops accepting
(listening sockets closed, GOAWAY on open connections), streams in flight get
`server.grace_period_s` to finish (the rest are cancelled), and the process exits 0. SIGHUP
reloads the config; an invalid file leaves the running config in place and logs every error.
With `--workers N` the command runs `workers.py` instead (N processes on one port, one
admin port for all; each worker runs this module and does all of the above).
`--watch-config` also reloads when a file the running config was read from changes (the
config file, JWKS and secret files it names, a Kubernetes volume's `..data` symlink swap; see
`filewatch`), polled once a second: no extra dependency, works on every filesystem and in
containers.

The admin port serves `/metrics`, `/stats`, `/healthz` and `/spend` (`extproc.admin`:
`/spend` only to loopback peers, or to those with the admin token when one is given).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2_grpc

from . import accesslog, admin, filewatch, grpc_tls, httpclient, loader, metrics, native
from . import config as cfgmod
from .auth.devcreds import dev_credentials, refusal
from .auth.devcreds import warning as dev_warning
from .auth.jwks_settings import warm_up
from .health import SERVING, Health
from .limits import settings as limits_settings
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
    #: TLS on every address (mutual when it names a client CA); None: plain
    tls: grpc_tls.TlsFiles | None = None
    #: told the admin port once it is bound (a `--workers` worker binds port 0 and tells
    #: its supervisor which port it got)
    admin_bound: Callable[[int], None] | None = None
    #: a reload may trust the published development credentials (`--allow-dev-credentials`;
    #: the start itself is checked by the command, `extproc.cli`)
    allow_dev_credentials: bool = False
    #: the config `extproc serve` has loaded and checked already (`load_tracked`), served as
    #: it is by a single process (the `--workers` supervisor drops it: each worker loads
    #: the file itself)
    loaded: tuple[cfgmod.Config, filewatch.State] | None = field(default=None, repr=False)
    #: the admin token `/spend` asks for (`--admin-token-file`, read once by the command;
    #: a `--workers` worker gets it with these options, never in its argv or environment);
    #: None: `/spend` only to loopback peers
    admin_token: str | None = field(default=None, repr=False)


class ListenError(Exception):
    """An address the server cannot serve on (in use, not this machine's, no such
    directory): said in one line, and the process exits 2."""


def _why_not(address: str) -> str:
    """Why binding `address` fails, as the system says it (gRPC's own error does not)."""
    import socket
    try:
        if address.startswith("unix:"):
            with socket.socket(socket.AF_UNIX) as sock:
                sock.bind(address[5:])
            os.unlink(address[5:])
        else:
            host, _, port = address.rpartition(":")
            host = host.strip("[]")
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            with socket.socket(family) as sock:
                sock.bind((host, int(port)))
    except (OSError, ValueError) as exc:
        return getattr(exc, "strerror", None) or str(exc)
    return "gRPC could not bind it"


def grpc_options(config: cfgmod.Config) -> list[tuple[str, int]]:
    size = config.server.grpc_max_message_bytes
    return [("grpc.max_receive_message_length", size),
            ("grpc.max_send_message_length", size),
            ("grpc.so_reuseport", 1),
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.keepalive_permit_without_calls", 1)]


async def serve(opts: ServeOptions, ready: asyncio.Event | None = None) -> None:
    """Serve until SIGTERM/SIGINT; then drain within the grace period."""
    if opts.loaded is not None:   # the command's reading, which it checked
        (config, read), opts.loaded = opts.loaded, None
    else:
        config, read = load_tracked(opts.config_path)
        _refuse_dev_credentials(config, opts)
    metrics.CONFIG_LOADED.set(time.time())
    processor = Processor(config)
    server = grpc.aio.server(options=grpc_options(config))
    server.add_generic_rpc_handlers((processor.handler(),))
    health_service = Health(("", SERVICE))
    health_pb2_grpc.add_HealthServicer_to_server(health_service, server)
    credentials = grpc_tls.server_credentials(opts.tls) if opts.tls else None
    for address in opts.addresses:
        try:
            port = server.add_secure_port(address, credentials) if credentials is not None \
                else server.add_insecure_port(address)
        except RuntimeError:
            port = 0
        if not port:   # (a traceback before; found by review)
            await server.stop(None)
            raise ListenError(f"cannot listen on {address}: {_why_not(address)}")
    # before the port opens: a SIGTERM from then on drains (once started) instead of killing
    # a process that may already hold a stream
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await server.start()

    runner = None
    if opts.admin_port is not None:
        try:
            runner = await admin.start(processor, health_service, opts.admin_host,
                                       opts.admin_port, opts.admin_token)
        except OSError as exc:
            await server.stop(None)
            raise ListenError(f"cannot open the admin port on {opts.admin_host}:"
                              f"{opts.admin_port}: {exc.strerror or exc}") from None
        if opts.admin_bound is not None:
            opts.admin_bound(runner.addresses[0][1])

    watch = filewatch.Watch(opts.config_path, read) if opts.watch_config else None
    allow_dev = opts.allow_dev_credentials
    loop.add_signal_handler(signal.SIGHUP, lambda: _reload(processor, opts.config_path, watch,
                                                           allow_dev))
    watcher = loop.create_task(_watch(processor, opts.config_path, watch, allow_dev)) \
        if watch is not None else None
    warm_up()
    # What exists now (modules, protobuf descriptors, the config) lives as long as the
    # process: out of the cyclic GC's sight, a full collection walks only what requests
    # create, and pauses the event loop for a few ms instead of about 20 ms.
    gc.collect()
    gc.freeze()
    await health_service.set_all(SERVING)
    log.info("serving ext_proc on %s (routes: %s, pid %d, hot path: %s)",
             ", ".join(opts.addresses), ", ".join(sorted(config.routes)), os.getpid(),
             native.status()["reason"])
    if ready is not None:
        ready.set()
    await stop.wait()
    # First of all, before anything that could take time: probes and health-checking
    # load balancers see NOT_SERVING now (open Watch streams get it and end).
    await health_service.shutdown()
    if watcher is not None:
        watcher.cancel()
    grace = processor.config.server.grace_period_s
    log.info("stopping: %d streams in flight, grace period %.1fs",
             processor.streams_active, grace)
    # stop(grace) closes the listening sockets and sends GOAWAY on every connection at once:
    # a new stream needs a new connection, which is refused here (Envoy opens it to another
    # replica). Streams in flight go on; those still open when the grace period ends are
    # cancelled. It returns as soon as no RPC is left.
    await server.stop(grace)
    await processor.drain(5.0)
    await limits_settings.close_stores()
    await httpclient.close()
    if runner is not None:
        await runner.cleanup()
    accesslog.flush()
    log.info("stopped")


def warn_open(opts: ServeOptions) -> None:
    """Say so when a TCP address off this host takes callers without a client certificate:
    the server's replies carry the provider keys it injects."""
    if opts.tls is not None and opts.tls.client_ca:
        return
    exposed = [a for a in opts.addresses if not a.startswith("unix:")
               and not a.startswith(("127.", "localhost:", "[::1]:"))]
    if exposed:
        log.warning("the gRPC port (%s) takes any caller that reaches it, and its replies "
                    "carry the provider keys the server injects: keep it behind a "
                    "NetworkPolicy, or ask callers for a client certificate "
                    "(--tls-client-ca), or serve on a unix socket", ", ".join(exposed))


def warn_per_worker_limits(config: cfgmod.Config, workers: int) -> None:
    """Say so when `--workers N` serves limits kept in memory: each worker keeps its own
    budgets, so every request, token and spend limit is N times looser than it reads
    (found by review: documented, but nothing said it at start)."""
    from .limits.policy import RateLimit
    from .limits.redis_store import RedisStore
    if workers <= 1:
        return
    names = sorted({name for name, route in config.routes.items()
                    for p in route.every_policy
                    if isinstance(p, RateLimit) and not isinstance(p.store, RedisStore)})
    if names:
        log.warning("with --workers %d the rate limits and budgets of route%s %s are kept "
                    "in memory, per worker: each worker enforces the whole limit on the "
                    "connections it gets, so together they allow up to %d times as much; "
                    "set limits.backend: redis (or EXTPROC_LIMITS_REDIS_URL) for one budget",
                    workers, "s" if len(names) > 1 else "", ", ".join(names), workers)


def _refuse_dev_credentials(config: cfgmod.Config, opts: ServeOptions) -> None:
    """The config this process loaded itself, refused (a ConfigError: exit 2, which the
    workers' supervisor does not restart) when it trusts the published development
    credentials without the operator's word: `extproc serve` checks its own reading before
    it starts, but a worker (re)started later loads the file again, and the file may have
    changed since."""
    found = dev_credentials(config)
    if found and not opts.allow_dev_credentials:
        raise ConfigError([refusal(opts.config_path, found).replace("\n", " ")])


def load_tracked(path: str) -> tuple[cfgmod.Config, filewatch.State]:
    """Load the config at start, with every file it read (for `--watch-config`)."""
    with filewatch.tracking() as read:
        return _load(path), read


def _load(path: str) -> cfgmod.Config:
    """Load the config; inside `filewatch.tracking()`, every file it reads is noted (the
    file itself, JWKS and secret files), each with its state when read."""
    filewatch.note(path)
    return loader.load(path)


def _reload(processor: Processor, path: str, watch: filewatch.Watch | None = None,
            allow_dev: bool = False) -> bool:
    """Load the file and swap it in for new streams (streams in flight keep the config they
    started with); an invalid file leaves the running config and logs every error, and so
    does one that trusts the published development credentials unless `allow_dev` (as
    `serve` refuses to start on it). `watch` learns what the new config read (or what the
    refused one tried to)."""
    with filewatch.tracking() as read:
        errors: list[str] = []
        try:
            config = _load(path)
        except ConfigError as exc:
            errors = exc.errors
        except Exception as exc:   # what else a file can make loading raise (not UTF-8,
            # nested deeper than Python parses): refused too, never the watcher's end
            errors = [f"{path}: cannot be loaded ({type(exc).__name__}: {str(exc)[:300]})"]
        else:
            found = dev_credentials(config)
            if found and not allow_dev:
                errors = [refusal(path, found).replace("\n", " ")]
            elif found:
                log.warning("%s", dev_warning(found))
    if errors:
        metrics.RELOADS.labels("refused").inc()
        if watch is not None:
            watch.refused(read)
        log.error("config reload refused, the running config stays: %s",
                  "; ".join(errors), extra={"fields": {"errors": errors}})
        return False
    processor.config = config
    if watch is not None:
        watch.loaded(read)
    metrics.RELOADS.labels("ok").inc()
    metrics.CONFIG_LOADED.set(time.time())
    warm_up()
    log.info("config reloaded from %s (routes: %s)", path,
             ", ".join(sorted(processor.config.routes)))
    return True


async def _watch(processor: Processor, path: str, watch: filewatch.Watch,
                 allow_dev: bool = False, interval: float = 1.0) -> None:
    """Reload when a file the running config was read from changes: the config file, a JWKS
    or secret file it names, a Kubernetes volume's `..data` swap (see `filewatch`), once the
    files have stayed unchanged for one more look (`poll_settled`: a file being written is
    not read half-done). A file that does not load is refused, then retried when it
    changes again."""
    while True:
        await asyncio.sleep(interval)
        changed = watch.poll_settled()
        if changed:
            log.info("config changed (%s): reloading", ", ".join(changed))
            _reload(processor, path, watch, allow_dev)


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
    except (grpc_tls.TlsError, ListenError) as exc:
        log.error("%s", exc)
        return 2
    return 0


def _install_uvloop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop
        uvloop.install()
