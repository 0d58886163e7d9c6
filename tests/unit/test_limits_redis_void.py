"""An admission the gateway gave up on (its timeout, a lost connection, a cancel) may still be
run by Redis, which had the command: RedisStore voids it (`_VOID`), so it is given back if it
ran, and kept from running if it had not yet. Without that, a request answered 503 (or let
through unmetered) kept its whole reservation charged (found by review)."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from extproc import loader
from extproc import protocol as P
from extproc.exchange import Exchange
from extproc.limits import settings
from extproc.limits.gcra import Window
from extproc.limits.redis_store import RedisStore, _args, _tag
from extproc.limits.store import StoreUnavailable
from tests.harness import RedisServer
from tests.unit.test_exchange import request_body, request_headers, send

HOUR = 3600.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    srv = RedisServer(tmp_path_factory.mktemp("redis"))
    yield srv
    srv.stop()


async def settled(store: RedisStore) -> None:
    """Until every void the store started has ended."""
    for _ in range(200):
        await asyncio.sleep(0.05)
        if not getattr(store, "_voids", ()):
            return
    raise AssertionError("voids still pending")


async def remaining(store: RedisStore, key: str, w: list[Window]) -> float:
    return (await store.admit(key, w, [0])).windows[0].remaining


async def marks(server: RedisServer) -> list[bytes]:
    client = aioredis.Redis.from_url(server.url)
    try:
        return sorted([await client.get(k) or b"" async for k in
                       client.scan_iter(match="extproc:rl:*:admission:*")])
    finally:
        await client.aclose()


@pytest.mark.parametrize("hang", ["timeout", "cancel"])
async def test_an_admission_redis_runs_after_the_gateway_gave_up_is_given_back(
        tmp_path: Path, hang: str) -> None:
    srv = RedisServer(tmp_path)
    store, w = RedisStore(srv.url), [Window(100, HOUR)]    # the default 50 ms timeout
    try:
        assert await remaining(store, "k", w) == 100
        assert srv.proc is not None
        srv.proc.signal(signal.SIGSTOP)                    # hung: it has the command
        try:
            call = asyncio.create_task(store.admit("k", w, [30]))
            if hang == "timeout":
                with pytest.raises(StoreUnavailable):
                    await call
            else:
                await asyncio.sleep(0.02)
                call.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await call
        finally:
            srv.proc.signal(signal.SIGCONT)
        await settled(store)
        assert await remaining(store, "k", w) == 100
        assert (await marks(srv)).count(b"void") == 1      # it ran, and was voided
    finally:
        await store.close()
        srv.stop()


async def test_a_void_first_keeps_the_admission_from_running(server: RedisServer) -> None:
    store, w, key = RedisStore(server.url, timeout_s=2.0), [Window(100, HOUR)], "first"
    tag = _tag(key)
    keys = [*store._keys(tag, w), f"extproc:rl:{{{tag}}}:admission:a1"]
    try:
        assert await store._void_script(keys=keys, args=_args(w, [-30])) == 0
        assert await store._admit(keys=keys, args=_args(w, [30])) == [-1]
        assert await remaining(store, key, w) == 100
    finally:
        await store.close()


async def test_a_void_gives_back_once_and_nothing_for_a_denied_admission(
        server: RedisServer) -> None:
    store, w, key = RedisStore(server.url, timeout_s=2.0), [Window(100, HOUR)], "once"
    tag = _tag(key)
    wkeys = store._keys(tag, w)
    try:
        allowed = [*wkeys, f"extproc:rl:{{{tag}}}:admission:a1"]
        assert (await store._admit(keys=allowed, args=_args(w, [30])))[0] == 1
        assert await remaining(store, key, w) == 70
        assert await store._void_script(keys=allowed, args=_args(w, [-30])) == 1
        assert await store._void_script(keys=allowed, args=_args(w, [-30])) == 0
        assert await remaining(store, key, w) == 100

        assert (await store.admit(key, w, [60])).allowed
        denied = [*wkeys, f"extproc:rl:{{{tag}}}:admission:a2"]
        assert (await store._admit(keys=denied, args=_args(w, [60])))[0] == 0
        assert await store._void_script(keys=denied, args=_args(w, [-60])) == 0
        assert await remaining(store, key, w) == 40       # no credit for what was not taken
    finally:
        await store.close()


async def test_a_request_refused_for_a_hung_redis_leaves_its_budget_uncharged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through an exchange: a spend budget over a hung Redis answers 503 (fail closed), and
    once Redis runs the admission it had, the budget is as it was."""
    monkeypatch.setattr(settings, "_STORES", {})
    srv = RedisServer(tmp_path)
    cfg = loader.parse({
        "limits": {"backend": "redis", "redis_url": srv.url, "timeout_ms": 50},
        "routes": [{"name": "openai", "provider": "openai", "rate_limits": [
            {"name": "team", "key": ["route"], "spend": [{"limit": 1.00, "per": "30d"}]}]}]})
    route = cfg.route("openai")
    store = settings._STORES[("redis", srv.url, 50.0)]
    assert isinstance(store, RedisStore)
    doc = {"model": "gpt-4o", "max_tokens": 10000, "messages": [{"role": "user",
                                                                 "content": "hi"}]}
    try:
        # a connection in the pool and the script loaded: the admission is sent, not stuck
        # in the connection's handshake
        assert (await store.admit("warm", [Window(1, HOUR)], [0])).allowed
        ex = Exchange(route, "openai")
        await send(ex, request_headers({}, req_mode=P.BUFFERED, resp_mode=P.STREAMED))
        assert srv.proc is not None
        srv.proc.signal(signal.SIGSTOP)
        try:
            [reply] = await send(ex, request_body(json.dumps(doc).encode(), True))
        finally:
            srv.proc.signal(signal.SIGCONT)
        assert reply.immediate_response.status.code == 503
        ex.close()
        await settled(store)
        rows = await store.spend_budgets()
        assert rows == []                                  # nothing held in any window
        assert (await marks(srv)).count(b"void") == 1
    finally:
        await settings.close_stores()
        srv.stop()
