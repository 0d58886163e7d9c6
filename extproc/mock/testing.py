"""Run the mock provider in a background thread, for tests that use blocking clients.

``with MockServer() as mock: ...`` binds 127.0.0.1 on a free port, serves from its own event
loop in a daemon thread (so synchronous SDK clients in the test thread cannot deadlock it) and
shuts down cleanly on exit.
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType

from aiohttp import web

from extproc.mock.server import build_app


class MockServer:
    """The mock LLM provider served from a background thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:43123`` (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> MockServer:
        """Start serving; return once the port is bound."""
        self._thread = threading.Thread(target=self._run, name="mock-llm", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("mock-llm did not start")
        if self._error is not None:
            raise RuntimeError("mock-llm failed to start") from self._error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and join the thread."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> MockServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        runner = web.AppRunner(build_app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
            self.port = runner.addresses[0][1]
            self._ready.set()
            await self._stop.wait()
        finally:
            await runner.cleanup()
