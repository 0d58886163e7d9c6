"""`extproc serve --admin-token-file` as users run it: `/spend` asks every peer for the token
(the other admin endpoints stay open), `--workers 2` too (the supervisor sends its workers
the token), `extproc spend --admin` sends it from the flag or EXTPROC_ADMIN_TOKEN_FILE, and a
token file that cannot be used stops the start with exit 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from extproc.admin import TOKEN_ENV
from tests.harness import ROOT, Server, free_port, port_open

EXTPROC = [sys.executable, "-m", "extproc"]
TOKEN = "integration-admin-token-0123456789abcdef"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def _spend(admin_port: int, *args: str, env: dict[str, str] | None = None
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EXTPROC, "spend", "--admin", f"http://127.0.0.1:{admin_port}",
                           "--json", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=60, env=env or _env())


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "admin-token"
    path.write_text(TOKEN + "\n")
    return path


def test_serve_with_a_token_asks_it_on_spend_alone(tmp_path: Path, token_file: Path) -> None:
    server = Server(ROOT / "config/gateway.yaml", tmp_path,
                    extra=["--admin-token-file", str(token_file)])
    try:
        base = f"http://127.0.0.1:{server.admin_port}"
        r = httpx.get(f"{base}/spend", timeout=5)   # loopback, but no token
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert "admin token" in r.json()["error"] and TOKEN not in r.text
        assert httpx.get(f"{base}/spend", timeout=5, headers={
            "Authorization": "Bearer not-the-token-0123456789"}).status_code == 401
        r = httpx.get(f"{base}/spend", timeout=5, headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200 and r.json()["store"] == "memory"
        for path in ("/metrics", "/stats", "/healthz"):
            assert httpx.get(f"{base}{path}", timeout=5).status_code == 200, path

        # extproc spend: with the token from the flag, or from the environment
        done = _spend(server.admin_port, "--admin-token-file", str(token_file))
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == []
        done = _spend(server.admin_port, env=_env(**{TOKEN_ENV: str(token_file)}))
        assert done.returncode == 0, done.stderr
        # without: exit 1, the server's reason readable
        done = _spend(server.admin_port)
        assert done.returncode == 1
        assert "401 Unauthorized: /spend needs the server's admin token" in done.stderr
        assert "{" not in done.stderr and TOKEN not in done.stderr + done.stdout
        assert TOKEN not in server.proc.log()
    finally:
        assert server.stop() == 0


def test_workers_with_a_token(tmp_path: Path, token_file: Path) -> None:
    port, admin = free_port(), free_port()
    log = (tmp_path / "workers.log").open("wb")
    proc = subprocess.Popen([*EXTPROC, "serve", "--config", "config/gateway.yaml", "--listen",
                             f"127.0.0.1:{port}", "--workers", "2", "--admin-port", str(admin),
                             "--allow-dev-credentials"], cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, env=_env(**{TOKEN_ENV: str(token_file)}))
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and \
                (tmp_path / "workers.log").read_text().count("serving ext_proc") < 2:
            time.sleep(0.1)
        base = f"http://127.0.0.1:{admin}"
        stats: list[dict] = []
        while time.monotonic() < deadline:   # until both workers have bound their ports
            stats = httpx.get(f"{base}/stats", timeout=10).json()["workers"]
            if all(w["stats"] for w in stats):
                break
            time.sleep(0.2)
        assert all(w["stats"] for w in stats), stats
        r = httpx.get(f"{base}/spend", timeout=10)
        assert r.status_code == 401 and "admin token" in r.json()["error"]
        r = httpx.get(f"{base}/spend", timeout=10, headers={"Authorization": f"Bearer {TOKEN}"})
        # `configured` comes from the workers' own /spend: the supervisor got their answers
        assert r.status_code == 200 and r.json()["configured"] == 0, r.text
        for w in stats:   # each worker's own /spend asks for the token as well
            own = f"http://127.0.0.1:{w['admin_port']}/spend"
            assert httpx.get(own, timeout=5).status_code == 401
        done = _spend(admin, "--admin-token-file", str(token_file))
        assert done.returncode == 0, done.stderr
        assert _spend(admin).returncode == 1
        assert TOKEN not in (tmp_path / "workers.log").read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert not port_open(admin)


@pytest.mark.parametrize(("content", "says"), [
    ("", "empty"), ("too-short\n", "fewer than 16"), (None, "cannot be read")])
@pytest.mark.parametrize("via", ["flag", "env"])
def test_an_unusable_token_file_stops_the_start(tmp_path: Path, content: str | None,
                                                says: str, via: str) -> None:
    path = tmp_path / "admin-token"
    if content is not None:
        path.write_text(content)
    args = ["--admin-token-file", str(path)] if via == "flag" else []
    env = _env(**{TOKEN_ENV: str(path)}) if via == "env" else _env()
    admin = free_port()
    done = subprocess.run([*EXTPROC, "serve", "--config", "config/gateway.yaml", "--listen",
                           f"127.0.0.1:{free_port()}", "--admin-port", str(admin),
                           "--allow-dev-credentials", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, env=env)
    assert done.returncode == 2
    assert f"extproc serve: admin token file {path}: " in done.stderr and says in done.stderr
    assert "Traceback" not in done.stderr
    assert not port_open(admin)


def test_the_flag_wins_over_the_environment(tmp_path: Path, token_file: Path) -> None:
    bad = tmp_path / "short"
    bad.write_text("short")
    done = subprocess.run([*EXTPROC, "serve", "--config", "config/gateway.yaml",
                           "--admin-token-file", str(bad), "--allow-dev-credentials"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60,
                          env=_env(**{TOKEN_ENV: str(token_file)}))
    assert done.returncode == 2
    assert f"admin token file {bad}: the token has 5 characters" in done.stderr
