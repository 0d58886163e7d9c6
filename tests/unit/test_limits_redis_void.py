"""An admission the gateway gave up on (its timeout, a lost connection, a cancel) may still be
run by Redis, which had the command: RedisStore voids it (`_VOID`), so it is given back if it
ran, and kept from running if it had not yet. Without that, a request answered 503 (or let
through unmetered) kept its whole reservation charged (found by review)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from extproc import loader
from extproc import protocol as P
from extproc.exchange import Exchange
from extproc.limits import settings
from extproc.limits.gcra import Window
from extproc.limits.policy import RateLimit
from extproc.limits.redis_store import RedisStore, _args, _tag
from extproc.limits.store import StoreUnavailable
from tests.harness import RedisServer
from tests.unit.test_exchange import request_body, request_headers, send

HOUR = 3600.0


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


def chat(max_tokens: int) -> bytes:
    return json.dumps({"model": "gpt-4o", "max_tokens": max_tokens,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()


@contextlib.asynccontextmanager
async def redis_route(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                      rate_limits: list[dict[str, Any]], timeout_ms: float = 50,
                      **limits: Any) -> AsyncIterator[tuple[RedisServer, Any, RedisStore]]:
    """A route with `rate_limits` over a redis-server of its own: the server, the route and
    its store (a connection in its pool and the script loaded: an admission is sent, not
    stuck in the connection's handshake)."""
    monkeypatch.setattr(settings, "_STORES", {})
    srv = RedisServer(tmp_path)
    try:
        cfg = loader.parse({
            "limits": {"backend": "redis", "redis_url": srv.url, "timeout_ms": timeout_ms,
                       **limits},
            "routes": [{"name": "openai", "provider": "openai",
                        "rate_limits": rate_limits}]})
        store = settings._STORES[("redis", srv.url, float(timeout_ms))]
        assert isinstance(store, RedisStore)
        assert (await store.admit("warm", [Window(1, HOUR)], [0])).allowed
        yield srv, cfg.route("openai"), store
    finally:
        await settings.close_stores()
        srv.stop()


def hang_on_the_second(monkeypatch: pytest.MonkeyPatch, srv: RedisServer, store: RedisStore
                       ) -> tuple[list[str], asyncio.Event, Any]:
    """Redis stopped (SIGSTOP) as the store's second admission goes out: the keys it was
    asked to admit, an event set then, and the store's own `admit`, to put back."""
    admit = store.admit
    calls: list[str] = []
    second = asyncio.Event()

    async def admit_then(*args: Any, **kw: Any) -> Any:
        calls.append(str(args[0]))
        if len(calls) == 2:
            assert srv.proc is not None
            srv.proc.signal(signal.SIGSTOP)
            second.set()
        return await admit(*args, **kw)

    monkeypatch.setattr(store, "admit", admit_then)
    return calls, second, admit


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


async def test_a_void_first_keeps_the_admission_from_running(redis: RedisServer) -> None:
    store, w, key = RedisStore(redis.url, timeout_s=2.0), [Window(100, HOUR)], "first"
    tag = _tag(key)
    keys = [*store._keys(tag, w), store._mark(tag, "a1")]
    try:
        assert await store._void_script(keys=keys, args=_args(w, [-30])) == 0
        assert await store._admit(keys=keys, args=_args(w, [30])) == [-1]
        assert await remaining(store, key, w) == 100
    finally:
        await store.close()


async def test_a_void_gives_back_once_and_nothing_for_a_denied_admission(
        redis: RedisServer) -> None:
    store, w, key = RedisStore(redis.url, timeout_s=2.0), [Window(100, HOUR)], "once"
    tag = _tag(key)
    wkeys = store._keys(tag, w)
    try:
        allowed = [*wkeys, store._mark(tag, "a1")]
        assert (await store._admit(keys=allowed, args=_args(w, [30])))[0] == 1
        assert await remaining(store, key, w) == 70
        assert await store._void_script(keys=allowed, args=_args(w, [-30])) == 1
        assert await store._void_script(keys=allowed, args=_args(w, [-30])) == 0
        assert await remaining(store, key, w) == 100

        assert (await store.admit(key, w, [60])).allowed
        denied = [*wkeys, store._mark(tag, "a2")]
        assert (await store._admit(keys=denied, args=_args(w, [60])))[0] == 0
        assert await store._void_script(keys=denied, args=_args(w, [-60])) == 0
        assert await remaining(store, key, w) == 40       # no credit for what was not taken
    finally:
        await store.close()


async def test_a_give_back_gives_once_and_never_past_its_admissions_mark(
        redis: RedisServer) -> None:
    """A give-back of an admission known to have run turns its mark 'void' for the rest of
    the mark's life (no key of its own that outlives it: a refusal storm grew 600 s keys,
    found by review), so every try of it gives once; once the mark is gone a give-back gives
    nothing (a try delivered late, after a 'void' mark expired, gave twice: found by
    review)."""
    store, w, key = RedisStore(redis.url, timeout_s=2.0), [Window(100, HOUR)], "once-ran"
    tag = _tag(key)
    client = aioredis.Redis.from_url(redis.url)
    try:
        ticket = store.ticket()
        assert (await store.admit(key, w, [30], ticket=ticket)).allowed
        mark = store._mark(tag, ticket)
        assert await client.get(mark) == b"1"
        life = await client.pttl(mark)
        await store.give_back(key, w, [30], ticket=ticket)
        assert await remaining(store, key, w) == 100
        assert await client.get(mark) == b"void"
        assert 0 < await client.pttl(mark) <= life          # no longer than the admission's
        await store.give_back(key, w, [30], ticket=ticket)  # a second try: once
        assert await remaining(store, key, w) == 100

        other = store.ticket()                             # 30 more, then its mark is gone
        assert (await store.admit(key, w, [30], ticket=other)).allowed
        mark = store._mark(tag, other)
        await client.delete(mark)
        await store.give_back(key, w, [30], ticket=other)
        assert await remaining(store, key, w) == 70          # nothing given, never twice
        assert await client.exists(mark) == 0                # and no key left behind
    finally:
        await client.aclose()
        await store.close()


async def test_a_request_refused_for_a_hung_redis_leaves_its_budget_uncharged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through an exchange: a spend budget over a hung Redis answers 503 (fail closed), and
    once Redis runs the admission it had, the budget is as it was."""
    async with redis_route(tmp_path, monkeypatch, [
            {"name": "team", "key": ["route"], "spend": [{"limit": 1.00, "per": "30d"}]}]
            ) as (srv, route, store):
        ex = Exchange(route, "openai")
        await send(ex, request_headers({}, req_mode=P.BUFFERED, resp_mode=P.STREAMED))
        assert srv.proc is not None
        srv.proc.signal(signal.SIGSTOP)
        try:
            [reply] = await send(ex, request_body(chat(10000), True))
        finally:
            srv.proc.signal(signal.SIGCONT)
        assert reply.immediate_response.status.code == 503
        ex.close()
        await settled(store)
        rows = await store.spend_budgets()
        assert rows == []                                  # nothing held in any window
        assert (await marks(srv)).count(b"void") == 1


async def test_a_void_is_tried_until_redis_answers_it(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Tries on new connections never reach a hung Redis, while the admission, sent on an
    open one, runs once it is back: the void goes on until one is answered (tries that
    stopped after a fixed time left it charged, found by review)."""
    from extproc.limits import redis_store
    monkeypatch.setattr(redis_store, "VOID_RETRIES", (0.05,))
    monkeypatch.setattr(redis_store, "VOID_EVERY_S", 0.1, raising=False)
    srv = RedisServer(tmp_path)
    store, w = RedisStore(srv.url), [Window(100, HOUR)]
    try:
        assert await remaining(store, "k", w) == 100
        assert srv.proc is not None
        srv.proc.signal(signal.SIGSTOP)
        try:
            with pytest.raises(StoreUnavailable):
                await store.admit("k", w, [30])
            await asyncio.sleep(1.0)                       # ten tries and more, unanswered
            assert store._voids
        finally:
            srv.proc.signal(signal.SIGCONT)
        await settled(store)
        assert await remaining(store, "k", w) == 100
    finally:
        await store.close()
        srv.stop()


@pytest.mark.parametrize("on_error", ["deny", "allow"])
async def test_a_refusal_gives_back_the_earlier_limits_though_redis_hangs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, on_error: str) -> None:
    """Two limits; Redis hangs as the second is admitted: that admission is voided and the
    first limit's give-back, which a settlement sent into the hang lost, is its admission's
    void, tried until Redis answers (found by review: ~970 tokens stayed held)."""
    async with redis_route(tmp_path, monkeypatch, [
            {"name": "toks", "key": ["route"], "tokens": [{"limit": 100000, "per": "1h"}]},
            {"name": "reqs", "key": ["route"], "requests": [{"limit": 100, "per": "1h"}]}],
            on_backend_error=on_error) as (srv, route, store):
        calls, _, admit = hang_on_the_second(monkeypatch, srv, store)
        ex = Exchange(route, "openai")
        await send(ex, request_headers({}, req_mode=P.BUFFERED, resp_mode=P.STREAMED))
        try:
            [reply] = await send(ex, request_body(chat(900), True))
            await asyncio.sleep(0.3)
        finally:
            assert srv.proc is not None
            srv.proc.signal(signal.SIGCONT)
        if on_error == "deny":
            assert reply.immediate_response.status.code == 503
        else:
            assert reply.WhichOneof("response") == "request_body"
        ex.close()
        for policy in route.finishers:
            await policy.on_finish(ex)
        await settled(store)
        monkeypatch.setattr(store, "admit", admit)
        limits = next(p for p in route.finishers if isinstance(p, RateLimit)).limits
        toks, reqs = (next(s for s in limits if s.name == n) for n in ("toks", "reqs"))
        left = [(await store.admit(k, s.windows, [0] * len(s.windows))).windows[0].remaining
                for k, s in zip(calls, (toks, reqs), strict=True)]
        assert left == [100000, 100]


async def test_a_stream_cancelled_while_a_second_limit_waits_on_a_hung_redis_keeps_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The request never went upstream: the finish gives the first limit's tokens back as
    that admission's void, tried again once Redis answers (a settlement sent into the hang
    was lost: ~960 tokens stayed held, found by review). The request count stays, as for
    any request admitted."""
    async with redis_route(tmp_path, monkeypatch, [
            {"name": "toks", "key": ["route"], "requests": [{"limit": 100, "per": "1h"}],
             "tokens": [{"limit": 100000, "per": "1h"}]},
            {"name": "reqs", "key": ["route"], "requests": [{"limit": 100, "per": "1h"}]}]
            ) as (srv, route, store):
        calls, second, admit = hang_on_the_second(monkeypatch, srv, store)
        ex = Exchange(route, "openai")
        await send(ex, request_headers({}, req_mode=P.BUFFERED, resp_mode=P.STREAMED))
        task = asyncio.create_task(send(ex, request_body(chat(900), True)))
        await second.wait()
        await asyncio.sleep(0.01)
        task.cancel()                                      # the client left
        with pytest.raises(asyncio.CancelledError):
            await task
        ex.close()
        try:
            for policy in route.finishers:
                await policy.on_finish(ex)                 # into the hang
            await asyncio.sleep(0.3)
        finally:
            assert srv.proc is not None
            srv.proc.signal(signal.SIGCONT)
        await settled(store)
        monkeypatch.setattr(store, "admit", admit)
        limits = next(p for p in route.finishers if isinstance(p, RateLimit)).limits
        toks = next(s for s in limits if s.name == "toks")
        left = (await store.admit(calls[0], toks.windows, [0, 0])).windows
        assert [st.remaining for st in left] == [99, 100000]


async def test_a_request_refused_long_after_its_admission_is_given_back_by_settling(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin after the limits that refuses later than a give-back by ticket can work (the
    admission's mark gone): the finish settles the reservation back as before (found by
    review: a refusal 31 s after the admission gave nothing back, silently)."""
    async with redis_route(tmp_path, monkeypatch, [
            {"name": "toks", "key": ["route"], "tokens": [{"limit": 100000, "per": "1h"}]}],
            timeout_ms=500) as (srv, route, store):
        rl = next(p for p in route.finishers if isinstance(p, RateLimit))
        client = aioredis.Redis.from_url(srv.url)
        try:
            ex = Exchange(route, "openai")
            await send(ex, request_headers({}, req_mode=P.BUFFERED, resp_mode=P.STREAMED))
            await rl.on_request_body(ex, chat(900))       # admitted, never released
            key = ex.state["ratelimit_held"].keys[0][0]
            assert (await store.admit(key, rl.limits[0].windows, [0])).windows[0].remaining \
                < 100000
            async for mark in client.scan_iter(match="extproc:rl:*:admission:*"):
                await client.delete(mark)                  # its life is over
            monkeypatch.setattr(store, "give_back_s", 0.0)  # (instead of waiting 20 s)
            ex.close()
            await rl.on_finish(ex)
            left = (await store.admit(key, rl.limits[0].windows, [0])).windows[0].remaining
            assert left == 100000
        finally:
            await client.aclose()
