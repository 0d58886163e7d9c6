"""Starts real processes for integration tests: the mock provider, the extproc server, Envoy.

Every process gets free ports, writes its output to a log file under the test's tmp dir, and
is stopped (then killed) when the test or module is done. `Gateway` puts the three together
with a rendered reference Envoy config, optionally adjusted by the test, or with a whole Envoy
config of the test's own (`envoy_doc`, given the free ports). `RedisServer` is a throwaway
Redis for the rate-limit tests.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from extproc import envoy_config
from extproc.config import PROVIDERS
from extproc.envoy_bin import envoy_binary

ROOT = Path(__file__).resolve().parent.parent


def _ephemeral_low() -> int:
    """Where the kernel's ephemeral port range starts (the source ports of outgoing
    connections come from it)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


#: the ports `free_port` hands out: below the ephemeral range, from a point that differs
#: between runs, one after the other (never the same twice in a run)
_LOW = 10000
_PORTS = {"next": _LOW + (os.getpid() * 7919) % max(1, _ephemeral_low() - _LOW)}


def free_port() -> int:
    """A port free to listen on. Taken below the kernel's ephemeral range when there is
    room: a port picked inside it (as binding port 0 does) can be taken as the source port
    of some outgoing connection between the pick and the listener's bind, and the test
    fails with "address already in use"."""
    high = _ephemeral_low()
    if high - _LOW < 1000:                # no room below it: let the kernel pick
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    for _ in range(high - _LOW):
        port = _PORTS["next"]
        _PORTS["next"] = _LOW + (port + 1 - _LOW) % (high - _LOW)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def complete_lines(text: str) -> list[str]:
    """A log's complete lines: a line its process is still writing (its end not yet in the
    file) is left for the next read, never parsed half."""
    return text[:text.rfind("\n") + 1].splitlines()


class Proc:
    """A child process with its output in a log file; stopping it is idempotent."""

    def __init__(self, name: str, argv: list[str], log_dir: Path,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("ab")
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        self.popen = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, cwd=ROOT, env=full_env)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait_port(self, port: int, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while not port_open(port):
            if not self.alive():
                raise RuntimeError(f"{self.name} exited ({self.popen.returncode}):\n"
                                   f"{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not listening on {port}:\n{self.log()[-3000:]}")
            time.sleep(0.05)

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def log_lines(self) -> list[str]:
        return complete_lines(self.log())

    def signal(self, sig: int) -> None:
        if self.alive():
            self.popen.send_signal(sig)

    def stop(self, seconds: float = 15) -> int | None:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(seconds)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()
        return self.popen.returncode


class Mock:
    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.proc = Proc("mock", [sys.executable, "-m", "extproc", "mock-llm", "--port",
                                  str(self.port)], log_dir)
        self.proc.wait_port(self.port)
        self.url = f"http://127.0.0.1:{self.port}"

    def last(self) -> dict[str, Any] | None:
        """The last request the mock received (None before the first)."""
        try:
            with urllib.request.urlopen(f"{self.url}/_mock/last", timeout=5) as r:
                return json.load(r)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise

    def stop(self) -> None:
        self.proc.stop()


class Server:
    """`extproc serve` on a free port, with its admin port for /stats. The tests are a
    development setup: the server may trust the development credentials published with
    extproc (the reference config does), which `serve` refuses unless told."""

    def __init__(self, config: Path, log_dir: Path, port: int | None = None,
                 extra: list[str] | None = None, name: str = "extproc") -> None:
        self.config = config
        self.port = port or free_port()
        self.admin_port = free_port()
        self.proc = Proc(name, [sys.executable, "-m", "extproc", "serve", "--config",
                                str(config), "--listen", f"127.0.0.1:{self.port}",
                                "--admin-port", str(self.admin_port),
                                "--allow-dev-credentials", *(extra or [])], log_dir)
        self.proc.wait_port(self.port)
        self.proc.wait_port(self.admin_port)

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/stats",
                                    timeout=5) as r:
            return json.load(r)

    def wait_idle(self, seconds: float = 10) -> dict[str, Any]:
        """Wait until no stream is active, no per-request state is alive and no finish hook
        (settlement) is still running or waiting to be let go of."""
        deadline = time.monotonic() + seconds
        while True:
            stats = self.stats()
            if stats["streams_active"] == 0 and stats["exchanges_alive"] == 0 \
                    and stats.get("finishing", 0) == 0:
                return stats
            if time.monotonic() > deadline:
                return stats
            time.sleep(0.05)

    def stop(self) -> int | None:
        return self.proc.stop()


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def ext_proc_filter(doc: dict[str, Any]) -> dict[str, Any]:
    hcm = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    for f in hcm["typed_config"]["http_filters"]:
        if f["name"] == "envoy.filters.http.ext_proc":
            return f["typed_config"]
    raise KeyError("no ext_proc filter")


def routes(doc: dict[str, Any]) -> list[dict[str, Any]]:
    hcm = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    return hcm["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]


def add_route(doc: dict[str, Any], prefix: str, cluster: str, extproc_route: str,
              processing_mode: dict[str, str] | None = None) -> None:
    """Add a copy of the reference route for `cluster` at `prefix`, naming its own extproc
    route and, optionally, its own body modes."""
    reference = next(r for r in routes(doc) if r.get("name") == cluster)
    route = copy.deepcopy(reference)
    route["name"] = prefix.strip("/").replace("/", "-")
    route["match"] = {"prefix": prefix}
    overrides = route["typed_per_filter_config"]["envoy.filters.http.ext_proc"]["overrides"]
    overrides["grpc_initial_metadata"] = [{"key": "x-extproc-route", "value": extproc_route}]
    if processing_mode:
        overrides["processing_mode"] = processing_mode
    routes(doc).insert(0, route)


class Envoy:
    def __init__(self, doc: dict[str, Any], log_dir: Path, name: str = "envoy") -> None:
        self.config_path = log_dir / f"{name}.yaml"
        self.config_path.write_text(envoy_config.dump(doc))
        self.port = doc["static_resources"]["listeners"][0]["address"]["socket_address"][
            "port_value"]
        self.admin_port = doc["admin"]["address"]["socket_address"]["port_value"]
        extra = os.environ.get("TEST_ENVOY_ARGS", "").split()  # e.g. a component log level
        self.proc = Proc(name, [envoy_binary(), "-c", str(self.config_path),
                                "--disable-hot-restart", "--log-level", "warn",
                                # access log lines within 50 ms, not Envoy's default 10 s
                                "--file-flush-interval-msec", "50",
                                "--concurrency", "1", *extra], log_dir)
        self.proc.wait_port(self.port, 60)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.stop()


@dataclass(frozen=True)
class Ports:
    """The ports a test's own Envoy config is rendered with (`Gateway(envoy_doc=...)`)."""

    listen: int
    admin: int
    extproc: int
    mock: int


class Gateway:
    """Mock provider + extproc server + Envoy on the reference config, torn down by close()."""

    def __init__(self, log_dir: Path, config: dict[str, Any], *, mock: Mock | None = None,
                 fail_open: bool = False, start_server: bool = True,
                 adjust: Callable[[dict[str, Any]], None] | None = None,
                 settings: dict[str, Any] | None = None,
                 envoy_doc: Callable[[Ports], dict[str, Any]] | None = None) -> None:
        """`settings`: EnvoySettings fields to change (upstreams, ca_bundle, limits...).
        `envoy_doc`: the whole Envoy config instead of the reference one (its first listener
        is the one tests send to); `fail_open`, `settings` and `adjust` do not apply to it."""
        self.log_dir = log_dir
        self._own_mock = mock is None
        self.mock = mock or Mock(log_dir)
        self.config_path = write_config(log_dir / "extproc.yaml", config)
        self.server_port = free_port()
        self.server: Server | None = None
        try:
            if start_server:
                self.server = Server(self.config_path, log_dir, port=self.server_port)
            if envoy_doc is not None:
                self.doc = envoy_doc(Ports(listen=free_port(), admin=free_port(),
                                           extproc=self.server_port, mock=self.mock.port))
            else:
                self.doc = envoy_config.render_dict(envoy_config.settings_for(
                    "test", listen_port=free_port(), admin_port=free_port(),
                    extproc_port=self.server_port, failure_mode_allow=fail_open,
                    **{"upstreams": dict.fromkeys(PROVIDERS, self.mock.url),
                       **(settings or {})}))
            if adjust:
                adjust(self.doc)
            self.envoy = Envoy(self.doc, log_dir)
        except BaseException:
            self.close()
            raise
        self.url = self.envoy.url

    def restart_server(self) -> Server:
        self.server = Server(self.config_path, self.log_dir, port=self.server_port,
                             name=f"extproc-{time.monotonic_ns()}")
        return self.server

    def envoy_log(self) -> str:
        return self.envoy.proc.log()

    def access_log(self, request_id: str, seconds: float = 10,
                   key: str = "request_id") -> dict[str, Any]:
        """The access-log entry Envoy wrote for a request (sent with this x-request-id), whose
        field `key` holds the request id."""
        deadline = time.monotonic() + seconds
        while True:
            for line in complete_lines(self.envoy_log()):
                if line.startswith("{") and request_id in line:
                    entry = json.loads(line)
                    if entry.get(key) == request_id:
                        return entry
            if time.monotonic() > deadline:
                raise AssertionError(f"no access log entry for {request_id}")
            time.sleep(0.05)

    def server_access_line(self, request_id: str, seconds: float = 5) -> dict[str, Any]:
        """The server's own JSON access line for a request (its `request_id`), waited for:
        the server writes them in batches, up to 50 ms late."""
        assert self.server is not None
        deadline = time.monotonic() + seconds
        while True:
            for raw in self.server.proc.log_lines():
                if request_id in raw and "extproc.access" in raw:
                    doc = json.loads(raw[raw.index("{"):])
                    if doc.get("logger") == "extproc.access" and \
                            doc.get("request_id") == request_id:
                        return doc
            if time.monotonic() > deadline:
                raise AssertionError(f"no access line for {request_id} in the server's log")
            time.sleep(0.05)

    def close(self) -> None:
        for part in ("envoy", "server"):
            with contextlib.suppress(AttributeError):
                obj = getattr(self, part)
                if obj is not None:
                    obj.stop()
        if self._own_mock:
            self.mock.stop()


def redis_answers(port: int) -> bool:
    """True once a Redis on this port answers PING (not only listens: it may be loading)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A real `redis-server` on a free port, without persistence. `stop()` kills it (an
    outage, not a shutdown); `start()` brings it back on the same port, empty."""

    def __init__(self, log_dir: Path, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH: run scripts/ensure-redis (make "
                               "test does) or install Redis 6+")
        self.binary = binary
        self.log_dir = log_dir
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: Proc | None = None
        self._starts = 0
        self.start()

    def start(self, seconds: float = 15) -> None:
        if self.proc is not None and self.proc.alive():
            return
        self._starts += 1
        data_dir = self.log_dir / f"redis-{self.port}"
        data_dir.mkdir(exist_ok=True)
        self.proc = Proc(f"redis-{self.port}-{self._starts}", [
            self.binary, "--port", str(self.port), "--save", "", "--appendonly", "no",
            "--bind", "127.0.0.1", "--dir", str(data_dir)], self.log_dir)
        deadline = time.monotonic() + seconds
        while not redis_answers(self.port):
            if not self.proc.alive():
                raise RuntimeError(f"redis-server exited ({self.proc.popen.returncode}):\n"
                                   f"{self.proc.log()[-3000:]}")
            if time.monotonic() > deadline:
                self.proc.stop()
                raise RuntimeError(f"redis-server not answering on {self.port}:\n"
                                   f"{self.proc.log()[-3000:]}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.alive():
                self.proc.popen.kill()
                self.proc.popen.wait()
            self.proc.stop()
