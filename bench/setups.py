"""Starting and stopping the bench setups, each on fresh free ports.

(a) direct: Envoy -> mock, the reference config without the ext_proc filter;
(b) noop: the reference config, its ext_proc cluster pointing at bench/noop_extproc.py;
(r) noop+rewrite: (b) doing only the byte edits exact OpenAI stream usage takes (add
    include_usage to the request, cut the usage chunk out of the response): their floor;
(c) extproc: our server (`python -m extproc serve`) on the reference config with auth and
    rate limits taken out (routes keep their usage metering): the server's own cost;
(d) extproc+auth: (c) plus the reference config's auth: every request carries a JWT
    (RS256, verified against the dev JWKS, then cached) and gets the provider key injected;
(e) extproc+limits: (c) plus request and token limits (too large to run out) in memory;
(f) extproc+redis: the same limits in a real Redis server the bench starts;
(g) extproc+guards: (c) plus the reference PII guard masking prompts and replies (every
    streamed event decoded, masked and re-framed);
(h) extproc+all: the reference config as shipped, every policy on at once (JWT auth and the
    provider key, the PII guard, usage metering, the per-subject request and token limits in
    memory with their numbers raised out of reach);
(h2) extproc+all x2: (h) with `serve --workers 2`, and Envoy opening a connection to the
    processor per 4 streams so the kernel spreads them over both workers;
(l) litellm: LiteLLM's proxy (bench/litellm_peer.py), no Envoy: its master key and a
    masking guardrail (bench/litellm_guard.py) stand in for our auth and PII guard.

All setups share the same mock provider (bench/mock_uvloop.py) and run Envoy with
`--concurrency 1`. Every child gets PR_SET_PDEATHSIG, so none outlives the bench, and
`running()` stops them all (Envoy first) however its block ends.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from extproc import envoy_config, loader
from extproc.config import PROVIDERS
from extproc.envoy_bin import envoy_binary

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
GATEWAY_CONFIG = "config/gateway.yaml"
EXT_PROC_FILTER = "envoy.filters.http.ext_proc"
SETUPS = {"a": "direct", "b": "noop", "r": "noop+rewrite", "c": "extproc", "d": "extproc+auth",
          "e": "extproc+limits", "f": "extproc+redis", "g": "extproc+guards",
          "h": "extproc+all", "h2": "extproc+all x2", "l": "litellm"}
PROCESSORS = ("c", "d", "e", "f", "g", "h", "h2")
#: setups measured on some rows only, as (workload, concurrency): the rest are left out
ROWS = {"h2": {("non-streamed", 32), ("streamed-paced", 32)}}
#: `serve --workers` per setup (1 when absent)
WORKERS = {"h2": 2}
#: h2's cap on concurrent streams per connection to the processor (the reference config's is
#: 64): the kernel spreads connections, not streams, over SO_REUSEPORT workers, so at
#: concurrency 32 and one Envoy thread the cap of 64 keeps every stream on one connection
H2_STREAMS_PER_CONNECTION = 4
#: budgets no bench run can exhaust: the rows measure the cost of checking them
HUGE_REQUESTS, HUGE_TOKENS = 10**9, 10**12
HUGE_LIMITS = [{"name": "bench", "key": ["header:x-bench-client"],
                "requests": [{"limit": HUGE_REQUESTS, "per": "1m"}],
                "tokens": [{"limit": HUGE_TOKENS, "per": "1m"}]}]


def out_of_reach(limits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same limits (names, keys, windows) with every number raised out of reach."""
    out = []
    for limit in limits:
        raised = dict(limit)
        for kind, huge in (("requests", HUGE_REQUESTS), ("tokens", HUGE_TOKENS)):
            if kind in limit:
                raised[kind] = [{**window, "limit": huge} for window in limit[kind]]
        out.append(raised)
    return out


def _holders(route: dict[str, Any]) -> list[dict[str, Any]]:
    """Where a route names provider credentials: itself, and on the unified front each of
    its backends (copied, so the reference config's own dicts are never changed)."""
    holders = [route]
    if isinstance(route.get("backends"), dict):
        route["backends"] = {name: dict(spec) for name, spec in route["backends"].items()}
        holders += list(route["backends"].values())
    return holders


def _absolute_files(doc: dict[str, Any]) -> None:
    """Point the config's JWKS and provider key files at config/ (the bench writes the
    config it runs elsewhere)."""
    for route in doc.get("routes", []):
        for holder in _holders(route):
            cred = holder.get("upstream_credential")
            if cred and cred.get("file"):
                holder["upstream_credential"] = {**cred,
                                                 "file": str(ROOT / "config" / cred["file"])}
    for provider in (doc.get("auth") or {}).get("jwt_providers", {}).values():
        jwks = provider.get("jwks", {})
        if "file" in jwks:
            provider["jwks"] = {**jwks, "file": str(ROOT / "config" / jwks["file"])}


def reference_config_all(doc: dict[str, Any]) -> dict[str, Any]:
    """Setup (h): the reference config as shipped, every policy on, rate limits out of reach
    (same names, keys and windows), the memory backend, file paths absolute."""
    out = {k: v for k, v in doc.items() if not k.startswith("x-")}
    out["routes"] = [dict(route) for route in doc["routes"]]
    for route in out["routes"]:
        if "rate_limits" in route:
            route["rate_limits"] = out_of_reach(route["rate_limits"])
    out["limits"] = {**(doc.get("limits") or {}), "backend": "memory"}
    _absolute_files(out)
    return out


def processor_config(key: str, directory: Path, redis_url: str | None = None) -> Path:
    """The extproc config of setup `key`, derived from the reference config: (c) without
    auth and limits, (d) with its auth only, (e) and (f) with huge token and request limits
    in memory or in Redis, (h) and (h2) all of it with its limits out of reach."""
    import yaml
    doc = yaml.safe_load((ROOT / GATEWAY_CONFIG).read_text())
    if key in ("h", "h2"):
        path = directory / f"gateway-{SETUPS[key].replace(' ', '-')}.yaml"
        path.write_text(yaml.safe_dump(reference_config_all(doc), sort_keys=False))
        return path
    keep_auth = key == "d"
    out = {k: v for k, v in doc.items() if not k.startswith("x-")
           and k not in ("limits", "guards") and (keep_auth or k != "auth")}
    for route in out["routes"]:
        route.pop("rate_limits", None)
        route.pop("guards", None)
        for holder in _holders(route):
            if not keep_auth:
                holder.pop("upstream_credential", None)
            elif "upstream_credential" in holder:
                file = holder["upstream_credential"].get("file")
                if file:
                    holder["upstream_credential"] = {**holder["upstream_credential"],
                                                     "file": str(ROOT / "config" / file)}
        if not keep_auth:
            route.pop("auth", None)
        if key in ("e", "f"):
            route["rate_limits"] = HUGE_LIMITS
    if keep_auth:
        for provider in out["auth"]["jwt_providers"].values():
            if "file" in provider.get("jwks", {}):
                provider["jwks"]["file"] = str(ROOT / "config" / provider["jwks"]["file"])
    if key == "g":   # the reference PII guard, masking prompts and replies
        out["guards"] = doc["guards"]
        for route in out["routes"]:
            route["guards"] = list(doc["guards"])
    if key == "e":
        out["limits"] = {"backend": "memory"}
    elif key == "f":
        out["limits"] = {"backend": "redis", "redis_url": redis_url, "timeout_ms": 200}
    path = directory / f"gateway-{SETUPS[key]}.yaml"
    path.write_text(yaml.safe_dump(out, sort_keys=False))
    return path


@dataclass
class Running:
    """A started setup: where to send requests, and its processes by role."""

    key: str
    name: str
    port: int
    envoy_admin: int | None
    processor_admin: int | None = None
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    #: the request path the load goes to, and headers replacing the workloads' own
    path: str = "/openai/v1/chat/completions"
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wants(self, workload: str, concurrency: int) -> bool:
        """Whether this setup measures that row (see ROWS)."""
        rows = ROWS.get(self.key)
        return rows is None or (workload, concurrency) in rows

    def pids(self) -> dict[str, int]:
        return {role: p.pid for role, p in self.procs.items()}


def _die_with_parent() -> None:
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_ports(n: int) -> list[int]:
    """n distinct ports the kernel considers free right now."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not _port_open(port):
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening "
                               f"(see bench/out/logs/)")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {seconds}s")
        time.sleep(0.05)


def http_get(url: str, timeout: float = 2.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read().decode()


def envoy_config_for(key: str, port: int, admin: int, extproc_port: int,
                     mock_port: int) -> dict[str, Any]:
    """The rendered reference config; for (a) without the ext_proc filter and its overrides."""
    cfg = loader.load(ROOT / GATEWAY_CONFIG)
    settings = envoy_config.settings_for(
        "test", listen_port=port, admin_port=admin, extproc_port=extproc_port,
        max_request_body_bytes=cfg.server.max_request_body_bytes,
        upstreams={p: f"http://127.0.0.1:{mock_port}" for p in PROVIDERS})
    doc = envoy_config.render_dict(settings)
    if key == "a":
        for listener in doc["static_resources"]["listeners"]:
            for chain in listener["filter_chains"]:
                for net in chain["filters"]:
                    _strip_ext_proc(net["typed_config"])
    if key == "h2":
        for cluster in doc["static_resources"]["clusters"]:
            if cluster["name"] == "extproc":
                opts = cluster["typed_extension_protocol_options"][
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
                h2 = opts["explicit_http_config"]["http2_protocol_options"]
                h2["max_concurrent_streams"] = H2_STREAMS_PER_CONNECTION
    return doc


def _strip_ext_proc(hcm: dict[str, Any]) -> None:
    hcm["http_filters"] = [f for f in hcm.get("http_filters", [])
                           if f["name"] != EXT_PROC_FILTER]
    for vhost in hcm.get("route_config", {}).get("virtual_hosts", []):
        for route in vhost.get("routes", []):
            per_filter = route.get("typed_per_filter_config", {})
            per_filter.pop(EXT_PROC_FILTER, None)
            if not per_filter:
                route.pop("typed_per_filter_config", None)


class _Starter:
    def __init__(self, running: Running, log_dir: Path) -> None:
        self.running = running
        self.log_dir = log_dir

    def spawn(self, role: str, argv: list[str], quiet_stdout: bool = False,
              env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        name = self.running.name.replace(" ", "-")
        log = (self.log_dir / f"{name}-{role}.log").open("wb")
        with log:
            proc = subprocess.Popen(
                argv, cwd=ROOT, stdin=subprocess.DEVNULL, env=env,
                stdout=subprocess.DEVNULL if quiet_stdout else log, stderr=log,
                preexec_fn=_die_with_parent)
        self.running.procs[role] = proc
        return proc


def _stop(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    for role in ("envoy", "processor", "mock", "redis"):
        proc = procs.get(role)
        if proc is None or proc.poll() is not None:
            continue
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()


@contextlib.contextmanager
def running(key: str, log_dir: Path, burn_us: float = 0,
            processor: Sequence[str] | None = None) -> Iterator[Running]:
    """Start setup `key` (one of SETUPS), yield it ready to serve, and always stop it.
    `burn_us` makes (b)'s noop spin that much CPU per message (`bench/calibrate.py`);
    `processor` replaces `python -m extproc` as the command of our server's setups (the
    options after `serve` stay: `bench/split.py` runs a variant of the server this way)."""
    port, admin, mock_port, ext_port, ext_admin = free_ports(5)
    run = Running(key, SETUPS[key], port, None if key == "l" else admin,
                  ext_admin if key in PROCESSORS else None)
    log_dir.mkdir(parents=True, exist_ok=True)
    start = _Starter(run, log_dir)
    py = sys.executable
    try:
        mock = start.spawn("mock", [py, str(BENCH / "mock_uvloop.py"), "--port", str(mock_port)])
        _wait_port(mock_port, mock, "mock provider", 30)
        if key == "l":   # LiteLLM is the gateway itself: no Envoy in front of it
            import litellm_peer
            argv, env, run.path, run.headers = litellm_peer.prepare(log_dir, port, mock_port)
            proc = start.spawn("processor", argv, env=env)
            _wait_port(port, proc, "LiteLLM proxy", 180)
            yield run
            return
        if key in ("b", "r"):
            proc = start.spawn("processor", [py, str(BENCH / "noop_extproc.py"),
                                             "--port", str(ext_port)]
                               + (["--rewrite-usage"] if key == "r" else [])
                               + (["--burn-us", str(burn_us)] if burn_us else []))
            _wait_port(ext_port, proc, "noop ext_proc", 30)
        elif key in PROCESSORS:
            redis_url = None
            if key == "f":
                redis_port = free_ports(1)[0]
                redis = start.spawn("redis", ["redis-server", "--port", str(redis_port),
                                              "--bind", "127.0.0.1", "--save", "",
                                              "--appendonly", "no"])
                _wait_port(redis_port, redis, "redis-server", 30)
                redis_url = f"redis://127.0.0.1:{redis_port}/0"
            config = str(processor_config(key, log_dir, redis_url))
            # the bench is a development setup: (d), (h) and (h2) keep the reference
            # config's auth, which trusts the published development key and API key
            proc = start.spawn("processor", [
                *(processor or (py, "-m", "extproc")), "serve", "--config", config,
                "--listen", f"127.0.0.1:{ext_port}", "--admin-port", str(ext_admin),
                "--workers", str(WORKERS.get(key, 1)), "--allow-dev-credentials"])
            _wait_port(ext_port, proc, "extproc server", 30)
        doc = envoy_config_for(key, port, admin, ext_port, mock_port)
        path = log_dir / f"{run.name.replace(' ', '-')}-envoy.yaml"
        path.write_text(envoy_config.dump(doc))
        envoy = start.spawn("envoy", [envoy_binary(), "-c", str(path), "--disable-hot-restart",
                                      "--log-level", "warn", "--concurrency", "1"],
                            quiet_stdout=True)  # stdout carries the access log
        _wait_port(port, envoy, "envoy", 60)
        yield run
    finally:
        _stop(run.procs)


def envoy_ext_proc_stats(run: Running) -> dict[str, int]:
    """Envoy's non-zero ext_proc counters (streams, messages, failures)."""
    if run.envoy_admin is None:
        return {}
    url = f"http://127.0.0.1:{run.envoy_admin}/stats?format=json&filter=ext_proc"
    try:
        stats = json.loads(http_get(url)).get("stats", [])
    except (OSError, ValueError):
        return {}
    return {s["name"]: int(s["value"]) for s in stats
            if "value" in s and isinstance(s["value"], int) and s["value"]}


def counter_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """What each counter gained between two `envoy_ext_proc_stats` snapshots (non-zero)."""
    out = {name.rsplit(".", 1)[-1]: value - before.get(name, 0) for name, value in after.items()}
    return {k: v for k, v in out.items() if v}


def processor_stats(run: Running) -> dict[str, Any]:
    """Our server's /stats (streams and messages per kind), for setups (c) to (f)."""
    if run.processor_admin is None:
        return {}
    try:
        return json.loads(http_get(f"http://127.0.0.1:{run.processor_admin}/stats"))
    except (OSError, ValueError):
        return {}


def worker_streams(run: Running) -> list[int] | None:
    """Streams served so far by each worker of a `--workers N` processor (None otherwise)."""
    if WORKERS.get(run.key, 1) < 2:
        return None
    workers = processor_stats(run).get("workers") or []
    return [int((w.get("stats") or {}).get("streams_total", 0)) for w in workers]


def envoy_version() -> str:
    out = subprocess.run([envoy_binary(), "--version"], capture_output=True, text=True,
                         check=False, timeout=30)
    for line in (out.stdout + out.stderr).splitlines():
        if "version:" in line:
            return line.split("version:", 1)[1].strip()
    return "unknown"
