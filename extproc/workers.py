"""`serve --workers N`: N server processes on one port, supervised, behind one admin port
(and what `--workers auto` means on this machine: `resolve_workers`).

The supervisor starts N spawned workers that share the gRPC port through SO_REUSEPORT,
forwards SIGTERM, SIGINT and SIGHUP to them, and restarts a worker that crashes. With an
admin port it serves that port itself, for all of them:

- `/metrics`: every worker's metrics in one exposition, each series labelled `worker="i"`
  (`merge_expositions`), plus `extproc_worker_up{worker="i"}`. A restarted worker's counters
  start again under the same label, which Prometheus' `rate()` reads as a counter reset.
- `/healthz`: 200 while every worker is alive and its own `/healthz` says it serves, else 503.
- `/stats`: each worker's `/stats`, in a list.
- `/spend`: the spend budgets: from Redis once, or each worker's memory store's, every row
  marked with its `worker`; to the clients `extproc.admin.spend_allowed` lets in (loopback
  peers, or with an admin token, those that send it). The workers ask the same of the
  supervisor, which sends them the token when there is one.

Worker i serves its own admin endpoints on 127.0.0.1, on a port the kernel picks (so no
port next to the admin port has to be free), and tells the supervisor which, through
shared memory; `/stats` shows it. Until a worker has bound it (and while it restarts) the
supervisor counts it as not up.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import logging
import multiprocessing
import os
import signal
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .admin import refusal, spend_allowed

if TYPE_CHECKING:
    from .server import ServeOptions

log = logging.getLogger("extproc.server")
FETCH_TIMEOUT_S = 2.0
#: a worker that dies this soon after it started is tried again after a wait, not at once
CRASH_LOOP_S = 10.0
#: cores `--workers auto` leaves to others, chiefly Envoy's `--concurrency` worker threads
RESERVED_CORES_ENV = "EXTPROC_RESERVED_CORES"


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a cpuset), else all."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def resolve_workers(value: str, cores: int | None = None,
                    environ: Mapping[str, str] | None = None, unix: bool = False) -> int:
    """`--workers`: a count, or `auto`: one worker per usable core minus
    EXTPROC_RESERVED_CORES (default 1, the core of an Envoy run with `--concurrency 1`
    beside the server), at least 1; 1 when the server listens on a unix socket (which
    workers cannot share). Raises ValueError for anything else."""
    text = value.strip().lower()
    if text != "auto":
        try:
            count = int(text)
        except ValueError:
            count = 0
        if count < 1:
            raise ValueError(f"--workers takes a count of at least 1 or auto, got {value!r}")
        return count
    environ = os.environ if environ is None else environ
    raw = environ.get(RESERVED_CORES_ENV, "1")
    try:
        reserved = int(raw)
    except ValueError:
        raise ValueError(f"{RESERVED_CORES_ENV} must be a whole number of cores, "
                         f"got {raw!r}") from None
    if reserved < 0:
        raise ValueError(f"{RESERVED_CORES_ENV} must be 0 or more, got {reserved}")
    if unix:
        return 1
    return max(1, (usable_cores() if cores is None else cores) - reserved)


_UP_HELP = ("# HELP extproc_worker_up Whether the supervisor read this worker's metrics "
            "(1) or not (0)\n# TYPE extproc_worker_up gauge\n")


def _labelled(sample: str, label: str) -> str:
    """A sample line with `label` (`worker="0"`) first among its labels."""
    name_end = len(sample)
    for sep in ("{", " "):
        at = sample.find(sep)
        if 0 <= at < name_end:
            name_end = at
    name, rest = sample[:name_end], sample[name_end:]
    if rest.startswith("{}"):
        return f"{name}{{{label}}}{rest[2:]}"
    if rest.startswith("{"):
        return f"{name}{{{label},{rest[1:]}"
    return f"{name}{{{label}}}{rest}"


def merge_expositions(texts: Sequence[tuple[str, str]]) -> str:
    """One Prometheus text exposition from several `(worker, text)`: each family's HELP and
    TYPE once, then its samples from every worker, labelled `worker="<worker>"`."""
    families: dict[str, tuple[list[str], list[str]]] = {}   # name -> (header, samples)
    for worker, text in texts:
        label = f'worker="{worker}"'
        current: list[str] | None = None
        # (lines end at \n only: a label value may hold U+2028 or \r, which splitlines
        # would cut a sample at, and one broken sample makes Prometheus drop the scrape)
        for line in text.split("\n"):
            if not line.strip():
                continue
            if line.startswith("#"):
                parts = line.split(None, 3)
                if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                    header, current = families.setdefault(parts[2], ([], []))
                    if line not in header:
                        header.append(line)
                continue
            if current is None:   # a sample before any family header: a family of its own
                name = line.split("{", 1)[0].split(None, 1)[0]
                current = families.setdefault(name, ([], []))[1]
            current.append(_labelled(line, label))
    out = []
    for header, samples in families.values():
        out.extend(header)
        out.extend(samples)
    return "\n".join(out) + "\n" if out else ""


#: the supervisor's client for its workers' admin ports: never through a proxy (urllib
#: honours HTTP_PROXY even for 127.0.0.1 unless NO_PROXY lists it, and /spend names every
#: budget's subject and key)
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _fetch(port: int, path: str, token: str | None = None) -> bytes | None:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with _DIRECT.open(request, timeout=FETCH_TIMEOUT_S) as r:
            return r.read()
    except (OSError, ValueError):
        return None


#: seconds the supervisor's admin port waits on a connection for its request
ADMIN_IDLE_S = 10.0


class _Admin(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], worker_ports: Callable[[], list[int]],
                 alive: Callable[[], list[bool]], token: str | None = None) -> None:
        self.worker_ports = worker_ports   # 0: that worker has not bound its port (yet)
        self.alive = alive
        self.token = token   # the admin token /spend asks for (None: loopback peers only)
        super().__init__(address, _AdminHandler)


class _AdminHandler(http.server.BaseHTTPRequestHandler):
    server: _Admin
    #: a connection that sends no whole request in this long is closed (found by review:
    #: half-sent requests held a thread each, indefinitely)
    timeout = ADMIN_IDLE_S

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str,
              headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", ctype)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        ports = self.server.worker_ports()
        if path == "/healthz":
            ok = all(self.server.alive()) and all(
                port and _fetch(port, "/healthz") is not None for port in ports)
            self._send(200 if ok else 503, b"ok\n" if ok else
                       b"a worker is down or not serving\n", "text/plain")
        elif path == "/metrics":
            texts, up = [], []
            for i, port in enumerate(ports):
                body = _fetch(port, "/metrics") if port else None
                up.append(f'extproc_worker_up{{worker="{i}"}} {0 if body is None else 1}')
                if body is not None:
                    texts.append((str(i), body.decode("utf-8", "replace")))
            merged = merge_expositions(texts) + _UP_HELP + "\n".join(up) + "\n"
            self._send(200, merged.encode(), "text/plain; version=0.0.4; charset=utf-8")
        elif path == "/stats":
            workers = []
            for i, (port, alive) in enumerate(zip(ports, self.server.alive(), strict=True)):
                body = _fetch(port, "/stats") if alive and port else None
                workers.append({"worker": i, "alive": alive, "admin_port": port or None,
                                "stats": json.loads(body) if body else None})
            self._send(200, json.dumps({"workers": workers}).encode(), "application/json")
        elif path == "/spend":
            token = self.server.token
            status = spend_allowed(self.client_address[0], self.headers.get("Authorization"),
                                   token)
            if status != 200:
                headers, body = refusal(status)
                ctype = headers.pop("content-type")
                self._send(status, body, ctype, headers)
            else:
                self._send(*_spend(ports, self.server.alive(), token))
        else:
            self._send(404, b"not found\n", "text/plain")


def _spend(ports: list[int], alive: list[bool], token: str | None = None
           ) -> tuple[int, bytes, str]:
    """`/spend` of all workers: a shared (Redis) store's budgets once, each worker's own
    (memory) budgets marked with its index (asked with the admin token, if any)."""
    rows: list[dict[str, Any]] = []
    configured = None   # (every worker runs the same config)
    for i, (port, up) in enumerate(zip(ports, alive, strict=True)):
        body = _fetch(port, "/spend", token) if up and port else None
        if body is None:
            continue
        found = json.loads(body)
        if found.get("store") == "redis":
            return 200, body, "application/json"
        rows += [{**row, "worker": i} for row in found.get("budgets", ())]
        configured = found.get("configured", configured)
    answer: dict[str, Any] = {"store": "memory", "budgets": rows}
    if configured is not None:
        answer["configured"] = configured
    return 200, json.dumps(answer).encode(), "application/json"


def _worker(opts: ServeOptions, index: int, ports: Any, supervisor: int) -> None:
    """One worker process: `serve` with its admin endpoints on 127.0.0.1 at a port the
    kernel picks, written to `ports[index]` (shared with the supervisor) once bound."""
    from .logs import setup_logging
    from .server import run
    from .stack import die_with_parent
    die_with_parent()   # (a SIGKILLed supervisor left its workers serving: found by review)
    if os.getppid() != supervisor:   # it died before that took: nothing would stop us
        raise SystemExit(0)
    setup_logging(prefix=f"worker{index}")
    if opts.admin_port is not None:
        opts.admin_host, opts.admin_port = "127.0.0.1", 0

        def bound(port: int) -> None:
            ports[index] = port
        opts.admin_bound = bound
    opts.workers = 1
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(run(opts))


def run_workers(opts: ServeOptions) -> int:
    """Supervise N worker processes until they have all stopped."""
    from . import loader
    if any(a.startswith(("unix:", "unix-abstract:")) for a in opts.addresses):
        log.error("--workers > 1 needs a TCP address: a unix socket cannot be shared")
        return 2
    if any(int(a.rpartition(":")[2]) == 0 for a in opts.addresses):   # (each worker would
        log.error("--workers > 1 needs a fixed port: with port 0 each worker would listen "
                  "on a port of its own")   # get a port of its own: found by review)
        return 2
    from .auth.devcreds import dev_credentials, refusal
    if opts.loaded is None:   # (`extproc serve` checked its own reading already)
        # fail fast, once, on a bad config (each worker checks what it loads again)
        found = dev_credentials(loader.load(opts.config_path))
        if found and not opts.allow_dev_credentials:
            log.error("config: %s", refusal(opts.config_path, found).replace("\n", " "))
            return 2
    opts.loaded = None   # the workers never get it: each loads its own
    ctx = multiprocessing.get_context("spawn")
    stopping = False
    # each worker's admin port, written by the worker once bound (0 until then)
    ports = ctx.Array("i", opts.workers, lock=False)

    started: dict[int, float] = {}   # when each worker was last started

    def start(i: int) -> multiprocessing.process.BaseProcess:
        ports[i] = 0
        p = ctx.Process(target=_worker, args=(opts, i, ports, os.getpid()),
                        name=f"extproc-worker-{i}")
        started[i] = time.monotonic()
        p.start()
        return p

    alive = [True] * opts.workers   # as this loop last saw them (the admin thread reads it)
    admin = None
    if opts.admin_port is not None:   # (before any worker: found by review, a busy port
        try:                          # left the workers serving with no supervisor)
            admin = _Admin((opts.admin_host, opts.admin_port), lambda: list(ports),
                           lambda: list(alive), opts.admin_token)
        except OSError as exc:
            log.error("cannot open the admin port on %s:%s: %s", opts.admin_host,
                      opts.admin_port, exc.strerror or exc)
            return 2
        threading.Thread(target=admin.serve_forever, name="extproc-admin", daemon=True).start()
    failed = False   # a worker could not start at all: every one is stopped, exit 2
    first = set(range(opts.workers))   # workers on their first start
    procs = {i: start(i) for i in range(opts.workers)}
    #: restarts that could not start (the config file broken since), by when to try again,
    #: and the last wait (doubled each time, up to a minute): tried until the file is fixed
    down: dict[int, float] = {}
    waits: dict[int, float] = {}

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = stopping or signum != signal.SIGHUP
        for p in procs.values():
            if p.pid and p.is_alive():
                os.kill(p.pid, signum)

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, forward)
    try:
        while procs or (down and not stopping):   # (workers waiting to be tried again too)
            time.sleep(0.2)
            for i, when in list(down.items()):
                if not stopping and time.monotonic() >= when:
                    del down[i]
                    procs[i] = start(i)
            for i, p in list(procs.items()):
                alive[i] = p.is_alive()
                if alive[i]:
                    continue
                p.join()
                if stopping or p.exitcode == 2:
                    del procs[i]
                    if stopping:
                        continue
                    if i in first or not procs:   # it cannot start (its address, its
                        # config) and no worker serves: stop them all and say so, exit 2
                        # (found by review: restarted for ever, or exit 0 serving nothing)
                        log.error("worker %d could not start; stopping", i)
                        failed = True
                        forward(signal.SIGTERM, None)
                        down.clear()
                    else:   # a restart that cannot start (the config file changed since):
                        # the others serve on, and it is tried again (found by review)
                        waits[i] = wait = min(60.0, 2 * waits.get(i, 2.5))
                        log.error("worker %d could not start again; the others serve on, "
                                  "trying again in %.0f s", i, wait)
                        down[i] = time.monotonic() + wait
                elif time.monotonic() - started[i] < CRASH_LOOP_S:   # died as it started
                    # (a crash at load, not a config error: found by review, restarted every
                    # second for ever): tried again with the same backoff
                    del procs[i]
                    first.discard(i)
                    waits[i] = wait = min(60.0, 2 * waits.get(i, 2.5))
                    log.error("worker %d exited with %s %.1f s after it started; trying "
                              "again in %.0f s", i, p.exitcode, time.monotonic() - started[i],
                              wait)
                    down[i] = time.monotonic() + wait
                else:
                    log.error("worker %d exited with %s; restarting it", i, p.exitcode)
                    first.discard(i)
                    waits.pop(i, None)
                    procs[i] = start(i)
    finally:
        for p in procs.values():   # the supervisor failing: no worker left without it
            if p.pid and p.is_alive():
                os.kill(p.pid, signal.SIGTERM)
                p.join(timeout=30)
        if admin is not None:
            admin.shutdown()
            admin.server_close()
    return 2 if failed else 0
