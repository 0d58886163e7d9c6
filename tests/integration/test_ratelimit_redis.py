"""Rate limits in a real Redis, through the real Envoy: two extproc servers behind one Envoy
cluster enforce one budget exactly; with Redis stopped the configured fail mode holds, and
when it is back the limits work again without restarting anything."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.harness import Gateway, Mock, RedisServer, Server, add_route, write_config

pytestmark = pytest.mark.envoy

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def config(redis_url: str, on_error: str) -> dict[str, Any]:
    return {"server": {"max_request_body_bytes": 1048576},
            "limits": {"backend": "redis", "redis_url": redis_url, "timeout_ms": 200,
                       "on_backend_error": on_error},
            "routes": [{"name": "shared", "provider": "openai", "rate_limits": [
                {"name": "per-client", "key": ["header:x-test-client"],
                 "requests": [{"limit": 20, "per": "1h"}],
                 "tokens": [{"limit": 1_000_000, "per": "1h"}]}]}]}


def two_endpoints(second_port: int) -> Any:
    def adjust(doc: dict[str, Any]) -> None:
        add_route(doc, "/shared/", "openai", "shared")
        cluster = next(c for c in doc["static_resources"]["clusters"]
                       if c["name"] == "extproc")
        endpoints = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
        second = {"endpoint": {"address": {"socket_address": {
            "address": "127.0.0.1", "port_value": second_port}}}}
        endpoints.append(second)
    return adjust


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, mock: Mock, redis: RedisServer
         ) -> Iterator[tuple[Gateway, Server]]:
    """Envoy with two extproc servers (fail closed) sharing one Redis."""
    tmp = tmp_path_factory.mktemp("redis-pair")
    doc = config(redis.url, "deny")
    second = Server(write_config(tmp / "second.yaml", doc), tmp, name="extproc-2")
    try:
        gw = Gateway(tmp, doc, mock=mock, adjust=two_endpoints(second.port))
    except BaseException:
        second.stop()
        raise
    yield gw, second
    gw.close()
    second.stop()


@pytest.fixture(scope="module")
def open_gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock, redis: RedisServer
            ) -> Iterator[Gateway]:
    gw = Gateway(tmp_path_factory.mktemp("redis-open"), config(redis.url, "allow"), mock=mock,
                 adjust=lambda doc: add_route(doc, "/shared/", "openai", "shared"))
    yield gw
    gw.close()


def who() -> dict[str, str]:
    return {"x-test-client": uuid.uuid4().hex}


def post(gw: Gateway, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{gw.url}/shared/v1/chat/completions", json=CHAT, headers=headers,
                      timeout=30)


def test_two_servers_enforce_one_budget_exactly(pair: tuple[Gateway, Server]) -> None:
    gw, second = pair
    client = who()

    async def burst() -> list[int]:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(
                max_connections=60)) as http:
            replies = await asyncio.gather(*(http.post(
                f"{gw.url}/shared/v1/chat/completions", json=CHAT, headers=client)
                for _ in range(60)))
        return [r.status_code for r in replies]

    codes = asyncio.run(burst())
    assert codes.count(200) == 20 and codes.count(429) == 40, codes
    assert gw.server.stats()["streams_total"] > 0 and second.stats()["streams_total"] > 0
    r = post(gw, client)
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0


def test_redis_down_fails_closed_then_recovers(pair: tuple[Gateway, Server],
                                               redis: RedisServer) -> None:
    gw, _ = pair
    client = who()
    assert post(gw, client).headers["x-ratelimit-remaining-requests"] == "19"
    redis.stop()
    try:
        started = time.monotonic()
        r = post(gw, client)
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "1"
        assert r.json()["error"]["message"] == "rate limits are unavailable; try again shortly"
        assert time.monotonic() - started < 3          # the Redis timeout, not a hang
    finally:
        redis.start()
    deadline = time.monotonic() + 10
    while (r := post(gw, client)).status_code != 200:
        assert time.monotonic() < deadline, r.text
        time.sleep(0.2)
    # a fresh Redis (no persistence): the budget starts over, and is counted again
    assert int(r.headers["x-ratelimit-remaining-requests"]) == 19
    assert post(gw, client).headers["x-ratelimit-remaining-requests"] == "18"


def test_redis_down_fails_open_then_recovers(open_gw: Gateway, redis: RedisServer) -> None:
    client = who()
    assert post(open_gw, client).headers["x-ratelimit-remaining-requests"] == "19"
    redis.stop()
    try:
        for _ in range(3):
            r = post(open_gw, client)
            assert r.status_code == 200, r.text
            assert "x-ratelimit-remaining-requests" not in r.headers
    finally:
        redis.start()
    deadline = time.monotonic() + 10
    while "x-ratelimit-remaining-requests" not in (r := post(open_gw, client)).headers:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert r.status_code == 200


def test_no_state_left(pair: tuple[Gateway, Server], open_gw: Gateway) -> None:
    for server in (pair[0].server, pair[1], open_gw.server):
        assert server is not None
        stats = server.wait_idle()
        assert stats["streams_active"] == 0 and stats["exchanges_alive"] == 0
        assert stats["finishing"] == 0

