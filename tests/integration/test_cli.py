"""The `extproc` command as users run it: check, render-envoy (validated by Envoy itself),
serve with health and workers, and `up` bringing the whole stack up and down cleanly."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import httpx
import jwt
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from extproc.auth.devcreds import ALLOW_ENV
from extproc.envoy_bin import envoy_binary
from tests.harness import ROOT, Server, free_port, port_open, write_config

EXTPROC = [sys.executable, "-m", "extproc"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EXTPROC, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)


def run_without_opt_in(*args: str) -> subprocess.CompletedProcess[str]:
    """`run`, with no EXTPROC_ALLOW_DEV_CREDENTIALS from the caller's environment."""
    env = {k: v for k, v in os.environ.items() if k != ALLOW_ENV}
    return subprocess.run([*EXTPROC, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=60, env=env)


def test_check_accepts_the_reference_config() -> None:
    r = run_without_opt_in("check", "config/gateway.yaml", "--allow-dev-credentials")
    assert r.returncode == 0, r.stderr
    assert "ok (6 routes" in r.stdout
    assert "warning: the gateway trusts published development credentials" in r.stdout
    assert "unified (openai-compatible: 7 models -> openai, azure, anthropic, gemini, " \
        "vertex)" in r.stdout


def test_check_says_what_serve_would_refuse_the_reference_config_for() -> None:
    """`check` passes what `serve` starts on: without the opt-in, the development
    credentials are an error."""
    r = run_without_opt_in("check", "config/gateway.yaml")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "ok (" not in r.stdout
    assert "config/gateway.yaml: config/gateway.yaml trusts the development credentials" \
        in r.stderr
    assert "JWT provider 'local-dev'" in r.stderr and "API key 'local-dev-key'" in r.stderr


def test_serve_refuses_the_development_credentials_unless_told(tmp_path: Path) -> None:
    """The reference config trusts a signing key whose private half ships with extproc and
    an API key the README prints: served as is, anyone could use the gateway and the
    provider keys it injects. `serve` says so and stops, unless the operator opts in."""
    port = free_port()
    r = run_without_opt_in("serve", "--config", "config/gateway.yaml", "--listen",
                           f"127.0.0.1:{port}")
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "serving ext_proc" not in r.stderr
    assert r.stderr.startswith("extproc serve: refusing to start: config/gateway.yaml trusts "
                               "the development credentials")
    assert "JWT provider 'local-dev'" in r.stderr and "API key 'local-dev-key'" in r.stderr
    assert "--allow-dev-credentials" in r.stderr and f"{ALLOW_ENV}=1" in r.stderr
    # either spelling of the opt-in starts it, with one warning line
    env = {k: v for k, v in os.environ.items() if k != ALLOW_ENV}
    for extra, more_env in ((["--allow-dev-credentials"], {}), ([], {ALLOW_ENV: "1"})):
        port = free_port()
        log_path = tmp_path / f"serve-{port}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen([*EXTPROC, "serve", "--config", "config/gateway.yaml",
                                     "--listen", f"127.0.0.1:{port}", *extra], cwd=ROOT,
                                    stdout=log, stderr=subprocess.STDOUT,
                                    env={**env, **more_env})
        try:
            deadline = time.monotonic() + 30
            while "serving ext_proc" not in (text := log_path.read_text()) \
                    and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert "serving ext_proc" in text, text
            assert _health(port) == health_pb2.HealthCheckResponse.SERVING
            assert text.count("trusts published development credentials") == 1, text
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0


def test_serve_starts_without_a_word_on_a_config_of_its_own(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.yaml", {"routes": [{"name": "o", "provider": "openai"}]})
    server = Server(config, tmp_path)
    try:
        assert _health(server.port) == health_pb2.HealthCheckResponse.SERVING
        assert "development credentials" not in server.proc.log()
    finally:
        assert server.stop() == 0


def test_serve_reads_the_config_once_at_start(tmp_path: Path) -> None:
    """The command checks the config before it starts and the server serves that reading:
    what loading says (a JWKS key skipped) is said once, not once per reading."""
    jwks = json.loads((ROOT / "config/dev-jwks.json").read_text())
    jwks["keys"].append({"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0", "kid": "h"})
    (tmp_path / "jwks.json").write_text(json.dumps(jwks))
    config = write_config(tmp_path / "c.yaml", {
        "auth": {"jwt_providers": {"p": {"issuer": "https://idp.example/", "audiences": ["a"],
                                         "jwks": {"file": "jwks.json"}}}},
        "routes": [{"name": "o", "provider": "openai", "auth": {"jwt": ["p"]}}]})
    server = Server(config, tmp_path)
    try:
        assert _health(server.port) == health_pb2.HealthCheckResponse.SERVING
        assert server.proc.log().count("JWKS: skipped") == 1, server.proc.log()
    finally:
        assert server.stop() == 0


def test_check_names_every_error_by_key_path(tmp_path: Path) -> None:
    bad = write_config(tmp_path / "bad.yaml", {
        "routes": [{"name": "a", "provider": "openai"}, {"name": "b", "provider": "openai"},
                   {"name": "c", "provider": "gemni"}, {"provider": "openai", "extra": 1}],
        "server": {"grace_period_s": "soon"}})
    r = run("check", str(bad))
    assert r.returncode == 1
    assert "routes[2].provider: unknown provider 'gemni'" in r.stderr
    assert "routes[3].extra: unknown key" in r.stderr
    assert "routes[3].name: is required" in r.stderr
    assert "server.grace_period_s: expected a number" in r.stderr


def test_a_config_that_cannot_be_read_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    bad = write_config(tmp_path / "bad.yaml", {"routes": [{"name": "a", "provider": "gemni"}]})
    for config in (str(tmp_path / "missing.yaml"), str(bad)):
        r = run("render-envoy", "--place", "local", "--config", config)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.startswith(f"extproc render-envoy: {config}: ")   # the file, named
    assert "cannot read" in run("render-envoy", "--config", str(tmp_path / "missing.yaml")
                                ).stderr
    assert "routes[0].provider: unknown provider 'gemni'" in r.stderr


def test_wrong_input_to_commands_is_one_line_naming_what(tmp_path: Path) -> None:
    """Found by review: each of these was a traceback, or PyYAML's six lines."""
    r = run("render-envoy", "--config", "config/gateway.yaml", "-o",
            str(tmp_path / "no" / "such" / "dir" / "envoy.yaml"))
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip() == (f"extproc render-envoy: cannot write "
                                f"{tmp_path}/no/such/dir/envoy.yaml: No such file or directory")
    r = run("spend", "--redis", "notaurl")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1 and "Redis URL must specify" in r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("routes:\n  - name: a\n   provider: x\n")
    r = run("serve", "--config", str(bad))
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith(f"extproc serve: {bad}: not valid YAML: {bad}:3:4: expected")


@pytest.mark.parametrize("place", ["local", "compose", "test", "kubernetes-sidecar"])
@pytest.mark.parametrize("fail_open", [False, True])
def test_every_rendered_envoy_config_passes_envoy_validate(tmp_path: Path, place: str,
                                                           fail_open: bool) -> None:
    out = tmp_path / "envoy.yaml"
    args = ["render-envoy", "--place", place, "-o", str(out)]
    if fail_open:
        args += ["--fail-open-skipping-policies", "--upstream", "openai=https://api.openai.com"]
    r = run(*args)
    assert r.returncode == 0, r.stderr
    if fail_open:
        assert "warning: --fail-open lets requests through unprocessed" in r.stderr
    v = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(out)],
                       capture_output=True, text=True, timeout=60)
    assert v.returncode == 0, v.stdout[-2000:] + v.stderr[-2000:]
    text = out.read_text()
    assert f"failure_mode_allow: {'true' if fail_open else 'false'}" in text
    assert "request_body_buffer_limit: 8388608" in text
    if fail_open:
        assert "sni: api.openai.com" in text


def test_fail_open_is_refused_where_a_route_enforces_policies(tmp_path: Path) -> None:
    """Found by the red team: fail-open Envoy sends a request unprocessed when the processor
    is down or slow, so authentication, guards and limits are skipped, and a request whose
    headers were answered (the provider key injected) goes out with an unread body."""
    r = run("render-envoy", "--fail-open")           # the reference config: every policy
    assert r.returncode != 0 and "routes anthropic, azure, gemini" in r.stderr, r.stderr
    assert "--fail-open-skipping-policies" in r.stderr and "Traceback" not in r.stderr
    metered = write_config(tmp_path / "metered.yaml",
                           {"routes": [{"name": "m", "provider": "openai"}]})
    r = run("render-envoy", "--fail-open", "--config", str(metered))
    assert r.returncode == 0 and "failure_mode_allow: true" in r.stdout, r.stderr
    assert "warning" not in r.stderr


def _health(port: int) -> int:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        return stub.Check(health_pb2.HealthCheckRequest(
            service="envoy.service.ext_proc.v3.ExternalProcessor"), timeout=5).status


def test_serve_health_and_graceful_exit(tmp_path: Path) -> None:
    server = Server(ROOT / "config/gateway.yaml", tmp_path)
    assert _health(server.port) == health_pb2.HealthCheckResponse.SERVING
    assert server.stop() == 0
    assert "stopped" in server.proc.log()


def _free_ports(n: int) -> int:
    """The first of n consecutive ports that can all be bound now."""
    while True:
        first = free_port()
        with contextlib.ExitStack() as held:
            try:
                for i in range(n):
                    s = held.enter_context(socket.socket())
                    s.bind(("127.0.0.1", first + i))
            except OSError:
                continue
        return first


def test_serve_workers_share_one_port(tmp_path: Path) -> None:
    port, admin = free_port(), _free_ports(3)
    # the ports next to the admin port are taken by someone else: the workers' own admin
    # endpoints must not need them (they once did, and a worker then crashed on every start)
    taken = contextlib.ExitStack()
    for neighbour in (admin + 1, admin + 2):
        s = taken.enter_context(socket.socket())
        s.bind(("127.0.0.1", neighbour))
        s.listen()
    log = (tmp_path / "workers.log").open("wb")
    proc = subprocess.Popen([*EXTPROC, "serve", "--config", "config/gateway.yaml", "--listen",
                             f"127.0.0.1:{port}", "--workers", "2", "--admin-port", str(admin),
                             "--allow-dev-credentials"],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        text = ""
        while time.monotonic() < deadline:
            text = (tmp_path / "workers.log").read_text()
            if text.count("serving ext_proc") == 2:
                break
            time.sleep(0.1)
        assert text.count("serving ext_proc") == 2, text
        assert '"process": "worker0"' in text and '"process": "worker1"' in text  # JSON logs
        assert _health(port) == health_pb2.HealthCheckResponse.SERVING
        # one admin port for both: their metrics merged, each series labelled by worker
        base = f"http://127.0.0.1:{admin}"
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        text = ""
        while time.monotonic() < deadline:
            text = httpx.get(f"{base}/metrics", timeout=10).text
            if 'extproc_worker_up{worker="1"} 1' in text and \
                    'extproc_worker_up{worker="0"} 1' in text:
                break
            time.sleep(0.2)
        families = {f.name: f for f in text_string_to_metric_families(text)}
        loaded = families["extproc_config_loaded_timestamp_seconds"].samples
        assert sorted(s.labels["worker"] for s in loaded) == ["0", "1"]
        stats = httpx.get(f"{base}/stats", timeout=10).json()["workers"]
        assert [(w["worker"], w["alive"]) for w in stats] == [(0, True), (1, True)]
        own = [w["admin_port"] for w in stats]
        assert len(set(own)) == 2 and not set(own) & {admin, admin + 1, admin + 2}, own
        for w, own_port in zip(stats, own, strict=True):   # each worker's own endpoints
            assert w["stats"]["streams_active"] == 0
            assert httpx.get(f"http://127.0.0.1:{own_port}/healthz", timeout=5).status_code \
                == 200
        assert "restarting" not in (tmp_path / "workers.log").read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        taken.close()
    assert (tmp_path / "workers.log").read_text().count("stopped") == 2
    assert not port_open(admin)


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def test_up_runs_the_stack_and_stops_it_without_orphans(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("port", "mock", "extproc", "admin", "envoy")}
    log = (tmp_path / "up.log").open("wb")
    proc = subprocess.Popen(
        [*EXTPROC, "up", "--port", str(ports["port"]), "--mock-port", str(ports["mock"]),
         "--extproc-port", str(ports["extproc"]), "--admin-port", str(ports["admin"]),
         "--envoy-admin-port", str(ports["envoy"])],
        cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
        # no opt-in from here: `up` is a development stack and opts in itself
        env={**{k: v for k, v in os.environ.items() if k != ALLOW_ENV},
             "EXTPROC_CONFIG": str(ROOT / "config/gateway.yaml"), "PYTHONPATH": str(ROOT)})
    children: list[int] = []
    try:
        deadline = time.monotonic() + 90
        while "gateway ready" not in (tmp_path / "up.log").read_text():
            assert proc.poll() is None, (tmp_path / "up.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "up.log").read_text()
            time.sleep(0.2)
        children = _children(proc.pid)
        assert len(children) == 3
        base = f"http://127.0.0.1:{ports['port']}"
        body = {"model": "gpt-4o-mini", "stream": True,
                "messages": [{"role": "user", "content": "hi"}]}
        # the line `up` prints to try works as printed
        printed = next(line.split("|", 1)[1].strip() for line in
                       (tmp_path / "up.log").read_text().splitlines() if "curl -N" in line)
        argv = shlex.split(printed)
        assert argv[:2] == ["curl", "-N"] and argv[2] == f"{base}/openai/v1/chat/completions"
        sent = dict(h.split(": ", 1) for flag, h in itertools.pairwise(argv) if flag == "-H")
        r = httpx.post(argv[2], content=argv[argv.index("-d") + 1], headers=sent, timeout=30)
        assert r.status_code == 200 and r.text.rstrip().endswith("data: [DONE]"), r.text
        # as a new user: no credential is a readable 401; `extproc token` gets one
        r = httpx.post(f"{base}/openai/v1/chat/completions", json=body, timeout=30)
        assert r.status_code == 401, r.text
        assert "missing credential" in r.json()["error"]["message"]
        assert r.headers["www-authenticate"].startswith('Bearer realm="llm-gateway"')
        token = subprocess.run([*EXTPROC, "token", "--sub", "alice"], check=True,
                               capture_output=True, text=True).stdout.strip()
        auth = {"authorization": f"Bearer {token}"}
        r = httpx.post(f"{base}/openai/v1/chat/completions", json=body, headers=auth,
                       timeout=30)
        assert r.status_code == 200 and r.text.rstrip().endswith("data: [DONE]")
        seen = httpx.get(f"http://127.0.0.1:{ports['mock']}/_mock/last").json()["headers"]
        assert seen["authorization"] == "Bearer mock-openai-key-DEV-ONLY"
        assert seen["x-gateway-subject"] == "jwt:local-dev:alice"
        # the README's development API key, sent the way the Anthropic SDK sends keys
        r = httpx.post(f"{base}/anthropic/v1/messages", json={**body, "max_tokens": 50},
                       headers={"x-api-key": "gw-local-dev-key-DEV-ONLY"}, timeout=30)
        assert "event: message_stop" in r.text
        seen = httpx.get(f"http://127.0.0.1:{ports['mock']}/_mock/last").json()["headers"]
        assert seen["x-api-key"] == "mock-anthropic-key-DEV-ONLY"
        assert seen["x-gateway-subject"] == "key:local-dev"
        r = httpx.post(f"{base}/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent"
                       "?alt=sse", json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
                       headers=auth, timeout=30)
        assert r.text.startswith("data: {") and "\r\n\r\n" in r.text
        r = httpx.post(f"{base}/vertex/v1/projects/p/locations/us-central1/publishers/google/"
                       "models/gemini-2.5-flash:streamGenerateContent",
                       json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
                       headers=auth, timeout=30)
        # no alt=sse: Vertex answers a JSON array, which the gateway streams as SSE
        assert r.headers["content-type"] == "text/event-stream"
        assert all(json.loads(block[6:])["candidates"] for block in r.text.split("\r\n\r\n")
                   if block)
        text = (tmp_path / "up.log").read_text()
        for label in ("mock |", "extproc |", "envoy |", "up |"):
            assert label in text
        assert text.count("trusts published development credentials") == 1
        # the new user's metrics check: tokens and time to first token per model
        metrics = httpx.get(f"http://127.0.0.1:{ports['admin']}/metrics", timeout=5).text
        for model in ("gpt-4o-mini", "gemini-2.5-flash"):
            for series in ("gen_ai_client_token_usage_sum",
                           "gen_ai_server_time_to_first_token_seconds_count"):
                assert any(line.startswith(series) and f'gen_ai_request_model="{model}"' in line
                           for line in metrics.splitlines()), (series, model)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    assert code == 0
    time.sleep(0.2)
    alive = [pid for pid in children if Path(f"/proc/{pid}").exists()
             and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()]
    assert alive == []
    assert not port_open(ports["port"]) and not port_open(ports["extproc"])


def test_compose_uses_the_current_rendering_of_the_one_envoy_template(tmp_path: Path) -> None:
    out = tmp_path / "compose.yaml"
    assert run("render-envoy", "--place", "compose", "-o", str(out)).returncode == 0
    assert (ROOT / "envoy/compose.yaml").read_text() == out.read_text(), \
        "envoy/compose.yaml is stale: run `make compose-config`"
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    core = {n for n, svc in compose["services"].items() if "profiles" not in svc}
    assert core == {"envoy", "extproc", "mock", "redis"}
    assert compose["services"]["envoy"]["image"] == "envoyproxy/envoy:v1.40.0"
    assert "./envoy/compose.yaml:/etc/envoy/envoy.yaml:ro" in compose["services"]["envoy"][
        "volumes"]
    rendered = yaml.safe_load(out.read_text())
    hosts = {c["name"]: c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"][
        "address"]["socket_address"]["address"] for c in rendered["static_resources"]["clusters"]}
    assert hosts["extproc"] == "extproc" and hosts["openai"] == "mock"


def test_serve_on_a_unix_socket(tmp_path: Path) -> None:
    sock = tmp_path / "extproc.sock"
    proc = subprocess.Popen([*EXTPROC, "serve", "--config", "config/gateway.yaml", "--unix",
                             str(sock), "--allow-dev-credentials"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        with grpc.insecure_channel(f"unix:{sock}") as ch:
            status = health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(), timeout=5).status
        assert status == health_pb2.HealthCheckResponse.SERVING
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def _wait_for(predicate, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_sighup_reloads_and_refuses_an_invalid_config(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.yaml",
                          {"routes": [{"name": "openai", "provider": "openai"}]})
    server = Server(config, tmp_path)
    try:
        assert server.stats()["routes"] == ["openai"]
        write_config(config, {"routes": [{"name": "openai", "provider": "openai"},
                                         {"name": "claude", "provider": "anthropic"}]})
        server.proc.signal(signal.SIGHUP)
        _wait_for(lambda: server.stats()["routes"] == ["claude", "openai"])
        write_config(config, {"routes": [{"name": "x", "provider": "gemni"}]})
        server.proc.signal(signal.SIGHUP)
        _wait_for(lambda: "config reload refused" in server.proc.log())
        assert "routes[0].provider: unknown provider 'gemni'" in server.proc.log()
        assert server.stats()["routes"] == ["claude", "openai"]
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize(("upstream", "says"), [
    ("openai=api.openai.com", "https://host[:port] (TLS) or http://host[:port]"),
    ("openai=htp://api.openai.com:99", "got 'htp://api.openai.com:99'"),
    ("openai=https://api.openai.com:99999", "got 'https://api.openai.com:99999'"),
    ("openai=https://api.openai.com/v1", "got 'https://api.openai.com/v1'"),
])
def test_an_upstream_must_say_its_scheme(upstream: str, says: str) -> None:
    """A bare host used to become plain HTTP on port 80, the provider key then sent in clear
    text to a provider meant to be reached over TLS; a wrong scheme was a traceback."""
    for command in ("render-envoy", "up"):
        r = run(command, "--upstream", upstream)
        assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
        assert says in r.stderr and upstream in r.stderr


def test_plain_http_to_a_remote_provider_is_warned_about() -> None:
    r = run("render-envoy", "--upstream", "openai=http://api.openai.com")
    assert r.returncode == 0 and "warning: upstream http://api.openai.com is plain HTTP" in r.stderr
    r = run("render-envoy", "--upstream", "openai=http://mock:8081",
            "--upstream", "anthropic=http://127.0.0.1:8081")
    assert r.returncode == 0 and "warning" not in r.stderr


def _pem(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def test_token_signs_with_the_key_it_is_given(tmp_path: Path) -> None:
    """`extproc token --key` signs with what the gateway verifies (RS*, ES*, EdDSA), with the
    algorithm the key's type calls for; a key it cannot use is one line, never a traceback."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    keys = {"RS256": rsa.generate_private_key(65537, 2048), "ES256": ec.generate_private_key(
        ec.SECP256R1()), "ES384": ec.generate_private_key(ec.SECP384R1()),
        "EdDSA": ed25519.Ed25519PrivateKey.generate()}
    for alg, key in keys.items():
        path = tmp_path / f"{alg}.pem"
        path.write_bytes(_pem(key))
        r = run("token", "--sub", "s", "--key", str(path), "--kid", "k1")
        assert r.returncode == 0, r.stderr
        token = r.stdout.strip()
        assert jwt.get_unverified_header(token)["alg"] == alg
        claims = jwt.decode(token, key.public_key(), algorithms=[alg],
                            options={"verify_aud": False})
        assert claims["sub"] == "s"
    (tmp_path / "k1.pem").write_bytes(_pem(ec.generate_private_key(ec.SECP256K1())))
    (tmp_path / "text.pem").write_text("not a key\n")
    for name, says in (("k1.pem", "cannot sign with an EC key on secp256k1"),
                       ("text.pem", "not an unencrypted PEM private key"),
                       ("missing.pem", "cannot read")):
        r = run("token", "--sub", "s", "--key", str(tmp_path / name), "--kid", "k1")
        assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
        assert says in r.stderr
