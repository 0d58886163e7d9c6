"""`serve` closes its limits stores as it stops, after the last settlement: a Redis store's
pool left open was a ResourceWarning at exit and connections Redis saw dropped, not closed."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path

import pytest
from redis import Redis

from extproc.limits import settings
from extproc.limits.redis_store import RedisStore
from extproc.server import ServeOptions, serve
from tests.harness import RedisServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clients(url: str) -> int:
    """Connections Redis holds, this check's own left out."""
    with Redis.from_url(url) as r:
        return len(r.client_list()) - 1


def test_serve_closes_the_redis_pool_as_it_stops(tmp_path: Path, redis: RedisServer,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "_STORES", {})
    config = tmp_path / "gateway.yaml"
    config.write_text(
        f"limits: {{backend: redis, redis_url: '{redis.url}', timeout_ms: 500}}\n"
        "routes:\n  - name: openai\n    provider: openai\n    rate_limits:\n"
        "      - {name: all, key: [route], requests: [{limit: 5, per: 1m}]}\n")
    opts = ServeOptions(str(config), addresses=(f"127.0.0.1:{free_port()}",))

    async def main() -> tuple[int, int]:
        ready = asyncio.Event()
        task = asyncio.create_task(serve(opts, ready))
        await asyncio.wait_for(ready.wait(), 30)
        stores = [s for s in settings._STORES.values() if isinstance(s, RedisStore)]
        assert len(stores) == 1
        assert await stores[0].ping()             # the pool holds a connection now
        open_before = await asyncio.to_thread(clients, redis.url)
        os.kill(os.getpid(), signal.SIGTERM)  # serve's own handler: a clean stop
        await asyncio.wait_for(task, 30)
        return open_before, await asyncio.to_thread(clients, redis.url)

    before, after = asyncio.run(main())
    assert before >= 1
    assert after == 0
    assert settings._STORES == {}
