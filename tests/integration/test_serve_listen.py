"""`extproc serve` on an address it cannot use: a bad `--listen` or port is refused by the
command line, and an address in use (for gRPC or the admin port, with one process or
`--workers`) is said in one line, exit status 2, never a traceback and never a supervisor
restarting its workers for ever (all found by review)."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

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
    (["--listen", "127.0.0.1:99999"], "expected a port from 0 to 65535 in '127.0.0.1:99999'"),
    (["--listen", "127.0.0.1:\uff15\uff10\uff10\uff15\uff11"], "expected a port from 0"),
    (["--listen", "127.0.0.1:50_051"], "expected a port from 0"),
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


def test_a_busy_supervisor_admin_port_is_one_line_and_starts_no_worker(busy_port: int) -> None:
    """Found by review: the supervisor bound its admin port after starting the workers, and
    a busy one left them serving with no supervisor (a traceback, then orphans)."""
    port = _free_port()
    done = serve("--listen", f"127.0.0.1:{port}", "--workers", "2",
                 "--admin-port", str(busy_port))
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"cannot open the admin port on 127.0.0.1:{busy_port}" in done.stderr
    assert "Traceback" not in done.stderr
    with socket.socket() as sock:   # no worker left serving
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_workers_need_a_fixed_tcp_port() -> None:
    """With port 0 each worker listened on a port of its own, none known (found by review);
    a unix-abstract name cannot be shared either."""
    for address in ("127.0.0.1:0", "127.0.0.1:00", "unix-abstract:extproc-test"):
        done = serve("--listen", address, "--workers", "2")
        assert done.returncode == 2, done.stderr[-2000:]
        assert "--workers > 1 needs a" in done.stderr and "Traceback" not in done.stderr


def _start_workers(tmp_path: Path, port: int) -> tuple[subprocess.Popen[str], Path, list[int]]:
    """`serve --workers 2` on a copy of the reference config, once both workers serve."""
    import time
    config = tmp_path / "gateway.yaml"
    config.write_text((ROOT / "config/gateway.yaml").read_text())
    for name in ("dev-jwks.json", "dev-secrets"):   # the files it names, beside it
        (tmp_path / name).symlink_to(ROOT / "config" / name)
    proc = subprocess.Popen([sys.executable, "-m", "extproc", "serve",
                             "--allow-dev-credentials", "--config", str(config),
                             "--listen", f"127.0.0.1:{port}", "--workers", "2"],
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.monotonic() + 60
    workers: list[int] = []
    while time.monotonic() < deadline and len(workers) < 2:
        time.sleep(0.2)
        children = subprocess.run(["pgrep", "-P", str(proc.pid), "-f", "spawn_main"],
                                  capture_output=True, text=True).stdout.split()
        workers = [int(pid) for pid in children] if _serving(port) else []
    assert len(workers) == 2, "the workers did not start"
    time.sleep(2)   # both serving
    return proc, config, workers


def _serving(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_when_every_restart_fails_the_supervisor_exits_2(tmp_path: Path) -> None:
    """Both workers killed, the config broken since: nothing serves, so the supervisor
    stops with exit status 2 (found by review: it exited 0)."""
    import os
    import signal
    port = _free_port()
    proc, config, workers = _start_workers(tmp_path, port)
    try:
        config.write_text("routes_typo: []\n")
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2, err[-3000:]
    assert "could not start; stopping" in err and not _serving(port)
    # killed as they had just started: tried again after a wait, not at once (found by
    # review: a worker crashing at load was restarted every second for ever)
    assert "s after it started; trying again in 5 s" in err, err[-3000:]


def test_a_killed_supervisor_leaves_no_worker(tmp_path: Path) -> None:
    """Found by review: a SIGKILLed supervisor left its workers serving, orphaned."""
    import os
    import signal
    import time
    port = _free_port()
    proc, _, workers = _start_workers(tmp_path, port)
    proc.kill()
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{pid}")
                                              for pid in workers):
        time.sleep(0.2)
    for pid in workers:   # (none left, or the test would leave them: stop them)
        if os.path.exists(f"/proc/{pid}"):
            os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"worker {pid} outlived its supervisor")


def test_a_restarted_worker_that_cannot_start_leaves_the_others_serving(tmp_path: Path
                                                                        ) -> None:
    """A worker that crashes is restarted and loads the config file again; if that file has
    since become invalid (an edit whose reload the running workers refused), the restart
    exits 2, the others serve on (found by review: the supervisor stopped them all), and it
    is tried again until the file is fixed (found by review: it stayed down for good)."""
    import os
    import signal
    import time

    from extproc.workers import CRASH_LOOP_S
    port = _free_port()
    proc, config, workers = _start_workers(tmp_path, port)
    good = config.read_text()
    time.sleep(CRASH_LOOP_S)   # a crash, not a worker dying as it starts (tried later)
    try:
        config.write_text("routes_typo: []\n")
        os.kill(workers[0], signal.SIGKILL)
        time.sleep(4)   # the restart loads the broken file and exits 2
        assert proc.poll() is None and _serving(port)
        config.write_text(good)
        deadline = time.monotonic() + 40
        count = 0
        while time.monotonic() < deadline and count < 2:
            time.sleep(0.5)
            count = len(subprocess.run(["pgrep", "-P", str(proc.pid), "-f", "spawn_main"],
                                       capture_output=True, text=True).stdout.split())
        assert count == 2, "the worker was not started again once the file was fixed"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert "could not start again; the others serve on, trying again in 5 s" in err, \
        err[-3000:]
    assert proc.returncode == 0


def test_a_worker_whose_supervisor_is_gone_does_not_serve(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """A worker whose supervisor died before it asked to die with it would never be told:
    it checks its parent is still the supervisor, and stops (found by review: a worker
    started just before its supervisor was SIGKILLed served on alone)."""
    from extproc import server, stack, workers
    served: list[object] = []
    monkeypatch.setattr(stack, "die_with_parent", lambda: None)
    monkeypatch.setattr(server, "run", lambda opts: served.append(opts) or 0)
    with pytest.raises(SystemExit) as done:
        workers._worker(server.ServeOptions(config_path="x"), 0, [0], supervisor=1)
    assert done.value.code == 0 and served == []


def test_a_config_that_is_no_utf8_or_nests_too_deep_is_a_config_error(tmp_path: Path) -> None:
    """Both were tracebacks, exit 1, and a worker restarted every second (found by review)."""
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"# caf\xe9\nroutes: []\n")
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    for path, said in ((latin, "is not UTF-8 (byte 5)"), (deep, "nests its YAML too deeply")):
        done = serve("--config", str(path))
        assert done.returncode == 2 and said in done.stderr, done.stderr[-2000:]
        assert "Traceback" not in done.stderr
