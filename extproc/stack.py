"""`extproc up`: the whole local stack as one process tree (mock provider, server, Envoy).

Logs of all three are interleaved on stdout, each line labelled. Ctrl-C or SIGTERM stops all
of them (Envoy first, so no request meets a missing processor); if one dies, the rest are
stopped too. Children get PR_SET_PDEATHSIG, so even a SIGKILLed `up` leaves no orphan.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import signal
import socket
import sys
import time
from pathlib import Path

from . import config as cfgmod
from . import envoy_config, loader
from .envoy_bin import envoy_binary

_COLORS = {"mock": "35", "extproc": "36", "envoy": "33"}


def die_with_parent() -> None:
    """This process gets SIGTERM when its parent dies (Linux; elsewhere nothing)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


async def wait_port(host: str, port: int, seconds: float, proc: asyncio.subprocess.Process,
                    what: str) -> None:
    deadline = time.monotonic() + seconds
    while not port_open(host, port):
        if proc.returncode is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not listen on {host}:{port} within {seconds}s")
        await asyncio.sleep(0.05)


def try_lines(base: str, route: cfgmod.RouteConfig | None) -> list[str]:
    """The curl line to try, with a development credential when the route asks for one (a
    line that answers 401 would be a poor first step)."""
    from .auth.devtoken import dev_authorization
    authorization = dev_authorization(route)
    header = f" -H 'Authorization: {authorization}'" if authorization else ""
    lines = [f"  curl -N {base}/openai/v1/chat/completions{header} -H 'content-type: "
             "application/json' -d '{\"model\":\"gpt-4o-mini\",\"stream\":true,"
             "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}'"]
    if authorization is None:
        lines.append("  (the openai route wants a credential from your identity provider: "
                     "add -H 'Authorization: Bearer <token>')")
    return lines


class Stack:
    def __init__(self, config_path: str, port: int = 10000,
                 upstreams: dict[str, str] | None = None, mock_port: int = 8081,
                 extproc_port: int = 50051, admin_port: int = 9464,
                 envoy_admin_port: int = 9901, run_dir: str = ".run") -> None:
        self.config_path = config_path
        self.port = port
        self.upstreams = upstreams
        self.mock_port = mock_port
        self.extproc_port = extproc_port
        self.admin_port = admin_port
        self.envoy_admin_port = envoy_admin_port
        self.run_dir = Path(run_dir)
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self._color = sys.stdout.isatty()

    def run(self) -> int:
        try:
            return asyncio.run(self._main())
        except KeyboardInterrupt:
            return 0

    def say(self, label: str, line: str) -> None:
        tag = f"{label:>7} |"
        if self._color:
            tag = f"\x1b[{_COLORS.get(label, '1')}m{tag}\x1b[0m"
        sys.stdout.write(f"{tag} {line}\n")
        sys.stdout.flush()

    async def _start(self, label: str, *argv: str) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL, preexec_fn=die_with_parent)
        self.procs[label] = proc
        asyncio.get_running_loop().create_task(self._pump(label, proc))
        return proc

    async def _pump(self, label: str, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            self.say(label, raw.decode(errors="replace").rstrip())

    async def _main(self) -> int:
        try:
            cfg = loader.load(self.config_path)
        except loader.ConfigError as exc:
            for line in exc.errors:
                self.say("up", f"config: {line}")
            return 2
        busy = [p for p in (self.port, self.mock_port, self.extproc_port, self.admin_port,
                            self.envoy_admin_port) if port_open("127.0.0.1", p)]
        if busy:
            self.say("up", f"ports already in use: {busy}; is another stack running?")
            return 1
        self.run_dir.mkdir(exist_ok=True)
        changes: dict = {"listen_port": self.port, "admin_port": self.envoy_admin_port,
                         "extproc_port": self.extproc_port,
                         **envoy_config.limits_of(cfg.server)}
        mock_url = f"http://127.0.0.1:{self.mock_port}"
        changes["upstreams"] = {p: mock_url for p in cfgmod.PROVIDERS} | (self.upstreams or {})
        envoy_yaml = self.run_dir / "envoy.yaml"
        envoy_yaml.write_text(envoy_config.render(envoy_config.settings_for("local", **changes)))

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for s in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(s, stop.set)
        py = sys.executable
        try:
            mock = await self._start("mock", py, "-m", "extproc", "mock-llm", "--port",
                                     str(self.mock_port))
            await wait_port("127.0.0.1", self.mock_port, 30, mock, "mock provider")
            server = await self._start(
                "extproc", py, "-m", "extproc", "serve", "--config", self.config_path,
                "--listen", f"127.0.0.1:{self.extproc_port}",
                "--admin-port", str(self.admin_port), "--watch-config",
                # the local stack is a development setup: the reference config trusts the
                # published development key and API key (`serve` refuses them otherwise)
                "--allow-dev-credentials")
            await wait_port("127.0.0.1", self.extproc_port, 30, server, "extproc server")
            envoy = await self._start("envoy", envoy_binary(), "-c", str(envoy_yaml),
                                      "--disable-hot-restart", "--log-level", "warn",
                                      "--file-flush-interval-msec", "250",
                                      "--concurrency", "2")
            await wait_port("127.0.0.1", self.port, 60, envoy, "envoy")
        except (RuntimeError, FileNotFoundError) as exc:
            self.say("up", f"failed to start: {exc}")
            await self._stop_all()
            return 1
        self._banner(cfg)
        waiters = [asyncio.ensure_future(p.wait()) for p in self.procs.values()]
        stopper = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait([stopper, *waiters], return_when=asyncio.FIRST_COMPLETED)
        code = 0
        if stopper not in done:
            dead = [n for n, p in self.procs.items() if p.returncode is not None]
            self.say("up", f"{', '.join(dead)} exited; stopping the stack")
            code = 1
        await self._stop_all()
        stopper.cancel()
        return code

    def _banner(self, cfg: cfgmod.Config) -> None:
        base = f"http://127.0.0.1:{self.port}"
        self.say("up", f"gateway ready on {base} (Envoy admin :{self.envoy_admin_port}, "
                       f"extproc admin :{self.admin_port}); Ctrl-C stops everything. Try:")
        for line in try_lines(base, cfg.route("openai")):
            self.say("up", line)

    async def _stop_all(self) -> None:
        for label in ("envoy", "extproc", "mock"):
            proc = self.procs.get(label)
            if proc is None or proc.returncode is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        self.say("up", "stopped")
