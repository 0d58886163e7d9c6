"""`extproc serve` on an address it cannot use: a bad `--listen` or port is refused by the
command line, and an address in use (for gRPC or the admin port, with one process or
`--workers`) is said in one line, exit status 2, never a traceback and never a supervisor
restarting its workers for ever (all found by review)."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.harness import ROOT


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port held by a plain listening socket (no SO_REUSEPORT: gRPC cannot share it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "extproc", "serve", "--allow-dev-credentials",
                           "--config", str(ROOT / "config/gateway.yaml"), *args],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


@pytest.mark.parametrize(("args", "said"), [
    (["--listen", "notahostport"], "expected HOST:PORT"),
    (["--listen", "127.0.0.1:99999"], "expected a port from 0 to 65535, got '99999'"),
    (["--listen", "127.0.0.1:0"], "expected a port from 1 to 65535"),
    (["--listen", "::1:50051"], "an IPv6 host in brackets"),
    (["--admin-port", "70000"], "expected a port from 0 to 65535"),
])
def test_a_bad_address_is_refused_by_the_command_line(args: list[str], said: str) -> None:
    done = serve(*args)
    assert done.returncode == 2 and said in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_an_address_in_use_is_one_line_and_exit_2(busy_port: int) -> None:
    done = serve("--listen", f"127.0.0.1:{busy_port}")
    assert done.returncode == 2, done.stderr
    assert f"cannot listen on 127.0.0.1:{busy_port}: Address already in use" in done.stderr
    assert "Traceback" not in done.stderr and "Event loop is closed" not in done.stderr


def test_an_admin_port_in_use_is_one_line_and_exit_2(busy_port: int) -> None:
    done = serve("--listen", f"127.0.0.1:{_free_port()}", "--admin-port", str(busy_port))
    assert done.returncode == 2, done.stderr
    assert f"cannot open the admin port on 127.0.0.1:{busy_port}" in done.stderr
    assert "Traceback" not in done.stderr and "Event loop is closed" not in done.stderr


def test_a_unix_socket_in_no_directory_is_one_line_and_exit_2() -> None:
    done = serve("--unix", "/nonexistent/extproc/sock")
    assert done.returncode == 2, done.stderr
    assert "cannot listen on unix:/nonexistent/extproc/sock: No such file or directory" \
        in done.stderr
    assert "Traceback" not in done.stderr


def test_workers_that_cannot_bind_stop_the_supervisor(busy_port: int) -> None:
    done = serve("--listen", f"127.0.0.1:{busy_port}", "--workers", "2")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "could not start; stopping" in done.stderr
    assert "restarting it" not in done.stderr and "Traceback" not in done.stderr
