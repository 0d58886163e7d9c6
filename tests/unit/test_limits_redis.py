"""RedisStore against a real redis-server: the same decisions as MemoryStore (the reference),
exact under concurrency across replicas, keys that expire, and fast failure when Redis is
down or hung, with recovery on the same store once it is back."""

from __future__ import annotations

import asyncio
import math
import random
import re
import signal
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extproc.limits.gcra import Outcome, Window
from extproc.limits.redis_store import RedisStore
from extproc.limits.store import MemoryStore, StoreUnavailable
from tests.harness import RedisServer

HOUR = 3600.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    srv = RedisServer(tmp_path_factory.mktemp("redis"))
    yield srv
    srv.stop()


def fresh_key() -> str:
    return f"test/{uuid.uuid4().hex}"


def assert_same(mem: Outcome, red: Outcome, what: str) -> None:
    """Decisions and counts exactly; times up to the real time that passed between the two."""
    assert red.allowed == mem.allowed, what
    assert [s.remaining for s in red.windows] == [s.remaining for s in mem.windows], what
    assert math.isinf(red.retry_after_s) == math.isinf(mem.retry_after_s), what
    if not math.isinf(mem.retry_after_s):
        assert red.retry_after_s == pytest.approx(mem.retry_after_s, abs=1.0), what
    for m, r in zip(mem.windows, red.windows, strict=True):
        assert r.window == m.window, what
        assert r.reset_s == pytest.approx(m.reset_s, abs=1.0), what


# Long periods, so the real time a sequence takes is nothing next to a unit's interval
# (18 s and more), and the decisions cannot depend on which clock a store reads.
SHAPES = (Window(50, HOUR), Window(200, 2 * HOUR), Window(7, HOUR), Window(120, 24 * HOUR))


@st.composite
def operations(draw: st.DrawFn) -> list[tuple[str, list[int], list[int]]]:
    ops = []
    for _ in range(draw(st.integers(1, 25))):
        which = draw(st.lists(st.integers(0, len(SHAPES) - 1), min_size=1, max_size=3,
                              unique=True))
        if draw(st.booleans()):
            amounts = [draw(st.integers(0, SHAPES[i].limit // 3)
                            | st.integers(0, SHAPES[i].limit + 2)) for i in which]
            ops.append(("admit", which, amounts))
        else:
            amounts = [draw(st.integers(-2 * SHAPES[i].limit, 2 * SHAPES[i].limit))
                       for i in which]
            ops.append(("settle", which, amounts))
    return ops


async def run_both(store: RedisStore, ops: Sequence[tuple[str, list[int], list[int]]]) -> None:
    mem, key = MemoryStore(), fresh_key()
    for step, (kind, which, amounts) in enumerate(ops):
        windows = [SHAPES[i] for i in which]
        if kind == "admit":
            assert_same(mem.admit_now(key, windows, amounts),
                        await store.admit(key, windows, amounts), f"step {step} of {ops}")
        else:
            await mem.settle(key, windows, amounts)
            await store.settle(key, windows, amounts)
    # the final state, seen through a free admission on every window
    assert_same(mem.admit_now(key, SHAPES, [0] * len(SHAPES)),
                await store.admit(key, SHAPES, [0] * len(SHAPES)), f"end of {ops}")


def test_same_decisions_as_memory_store(server: RedisServer) -> None:
    loop = asyncio.new_event_loop()
    store = RedisStore(server.url, timeout_s=2.0)

    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(operations())
    def check(ops: list[tuple[str, list[int], list[int]]]) -> None:
        loop.run_until_complete(run_both(store, ops))

    try:
        check()
    finally:
        loop.run_until_complete(store.close())
        loop.close()


async def test_settle_refunds_and_debts_like_memory_store(server: RedisServer) -> None:
    store, mem, key = RedisStore(server.url, timeout_s=2.0), MemoryStore(), fresh_key()
    w = [Window(50, HOUR)]
    try:
        async def both(kind: str, n: int) -> tuple[Outcome, Outcome] | None:
            if kind == "settle":
                await mem.settle(key, w, [n])
                await store.settle(key, w, [n])
                return None
            pair = mem.admit_now(key, w, [n]), await store.admit(key, w, [n])
            assert_same(*pair, f"{kind} {n}")
            return pair

        await both("admit", 10)
        await both("settle", -5)                            # refund: 5 back
        assert (await both("admit", 0))[1].windows[0].remaining == 45
        await both("settle", -100)                          # never more than a full window
        assert (await both("admit", 0))[1].windows[0].remaining == 50
        await both("settle", 80)                            # a debt: 30 past the window
        _, red = await both("admit", 1)
        assert not red.allowed and red.windows[0].remaining == 0
        assert red.retry_after_s == pytest.approx(31 * HOUR / 50, abs=1.0)
        assert red.windows[0].reset_s == pytest.approx(80 * HOUR / 50, abs=1.0)
        _, red = await both("admit", 51)                    # more than the window: never
        assert not red.allowed and red.retry_after_s == math.inf
        await both("settle", -60)                           # the debt paid back, 30 left
        assert (await both("admit", 0))[1].windows[0].remaining == 30
        await both("settle", -1000)
        assert (await both("admit", 0))[1].windows[0].remaining == 50
    finally:
        await store.close()


async def test_counts_stay_exact_for_token_sized_windows(server: RedisServer) -> None:
    """Unix time is too coarse a float for gcra's tolerances (its step is 2.4e-7 s): the
    store computes in a frame that starts at Redis's current second instead."""
    store, rng = RedisStore(server.url, timeout_s=2.0), random.Random(7)
    windows = [Window(1000, HOUR), Window(100_000, 60.0), Window(1_000_000, 24 * HOUR)]
    try:
        for _ in range(100):
            costs = [rng.randint(1, w.limit) for w in windows]
            outcome = await store.admit(fresh_key(), windows, costs)
            assert outcome.allowed
            assert [s.remaining for s in outcome.windows] == [
                w.limit - c for w, c in zip(windows, costs, strict=True)]
    finally:
        await store.close()


async def test_a_changed_limit_carries_the_units_used_like_memory_store(
        server: RedisServer) -> None:
    """A reload that lowers or raises a limit: the units used carry over (a lowered limit is
    never a fresh one, a raised one gives the difference), in Redis as in memory, and the
    spend listing reads the state the same way."""
    from tests.unit.test_limits_gcra import LIMIT_CHANGES
    store = RedisStore(server.url, timeout_s=2.0)
    try:
        for used, new_limit, left in LIMIT_CHANGES:
            key, old, changed = fresh_key(), Window(10, HOUR), Window(new_limit, HOUR)
            if used:
                assert (await store.admit(key, [old], [used])).allowed
            peek = await store.admit(key, [changed], [0])
            assert peek.windows[0].remaining == left, (used, new_limit)
            memory = MemoryStore()
            if used:
                await memory.admit("k", [old], [used])
            mem = await memory.admit("k", [changed], [0])
            assert mem.windows[0].remaining == left
        # refused after a lowered limit: the rescaled state is kept, so it drains at the
        # new rate and Retry-After holds (the second review)
        key = fresh_key()
        assert (await store.admit(key, [Window(10, 6.0)], [8])).allowed
        refused = await store.admit(key, [Window(5, 6.0)], [1])
        assert not refused.allowed and refused.retry_after_s == pytest.approx(4.8, abs=0.2)
        await asyncio.sleep(2.4)
        assert not (await store.admit(key, [Window(5, 6.0)], [1])).allowed
        # a value written by the older scripts (no interval) is read as it is
        client = aioredis.Redis.from_url(server.url)
        key = fresh_key()
        (name,) = store.keys(key, [Window(10, HOUR)])
        sec, _ = await client.time()
        await client.set(name, f"{sec + 360}.000000000000000", px=3_600_000)
        assert (await store.admit(key, [Window(10, HOUR)], [0])).windows[0].remaining == 9
        await client.aclose()
    finally:
        await store.close()


async def test_concurrent_requests_across_replicas_are_exact(server: RedisServer) -> None:
    replicas = [RedisStore(server.url, timeout_s=5.0) for _ in range(4)]
    key, w = fresh_key(), [Window(50, HOUR)]
    try:
        outcomes = await asyncio.gather(*(replicas[i % 4].admit(key, w, [1])
                                          for i in range(300)))
        allowed = [o for o in outcomes if o.allowed]
        assert len(allowed) == 50
        # serialised: every admitted request saw a different count left
        assert sorted(o.windows[0].remaining for o in allowed) == list(range(50))
        assert all(o.retry_after_s > 0 for o in outcomes if not o.allowed)
    finally:
        await asyncio.gather(*(r.close() for r in replicas))


async def test_concurrent_token_costs_and_settles_lose_nothing(server: RedisServer) -> None:
    replicas = [RedisStore(server.url, timeout_s=5.0) for _ in range(4)]
    key, w = fresh_key(), [Window(1000, HOUR)]
    rng = random.Random(5)
    costs = [rng.randint(1, 60) for _ in range(300)]
    try:
        outcomes = await asyncio.gather(*(replicas[i % 4].admit(key, w, [c])
                                          for i, c in enumerate(costs)))
        admitted = [c for c, o in zip(costs, outcomes, strict=True) if o.allowed]
        assert 0 < sum(admitted) <= 1000
        assert 1000 - sum(admitted) < max(c for c, o in zip(costs, outcomes, strict=True)
                                          if not o.allowed)
        # each admitted request used a third of its estimate (rounded down): refund the rest
        used = [c // 3 for c in admitted]
        await asyncio.gather(*(replicas[i % 4].settle(key, w, [u - c])
                               for i, (c, u) in enumerate(zip(admitted, used, strict=True))))
        after = await replicas[0].admit(key, w, [0])
        assert after.windows[0].remaining == 1000 - sum(used)
    finally:
        await asyncio.gather(*(r.close() for r in replicas))


async def test_keys_share_a_hash_tag_and_expire(server: RedisServer) -> None:
    store, key = RedisStore(server.url, timeout_s=2.0), fresh_key()
    client = aioredis.Redis.from_url(server.url)
    windows = [Window(50, HOUR), Window(1000, 24 * HOUR)]
    try:
        names = store.keys(key, windows)
        tags = {re.fullmatch(r"extproc:rl:\{([0-9a-f]{20})\}:per/\d+", n)[1] for n in names}
        assert len(tags) == 1 and names[0].endswith(":per/3600")

        assert not (await store.admit(key, windows, [51, 1])).allowed
        assert await client.exists(*names) == 0                 # a denial writes nothing

        assert (await store.admit(key, windows, [10, 100])).allowed
        ttls = [await client.pttl(n) for n in names]             # until full again + margin
        assert 718_000 < ttls[0] <= 721_000
        assert 8_638_000 < ttls[1] <= 8_641_000
        await store.settle(key, windows[:1], [100])              # a debt lives longer
        assert 2 * 3_600_000 + 718_000 < await client.pttl(names[0]) <= 2 * 3_600_000 + 721_000
        await store.settle(key, windows[:1], [-1000])            # full again: gone soon
        assert 0 < await client.pttl(names[0]) <= 1_000
        await asyncio.sleep(1.1)
        assert await client.exists(names[0]) == 0
        assert await client.exists(names[1]) == 1
    finally:
        await client.aclose()
        await store.close()


async def test_outage_fails_fast_and_recovers_on_the_same_store(tmp_path: Path) -> None:
    srv = RedisServer(tmp_path)
    store, w = RedisStore(srv.url), [Window(50, HOUR)]        # the default 50 ms timeout
    try:
        assert (await store.admit("k", w, [1])).allowed
        assert await store.ping()

        srv.stop()                                              # down: connection refused
        for op in (store.admit("k", w, [1]), store.settle("k", w, [1])):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as err:
                await op
            assert time.monotonic() - started < 1.0
            assert str(err.value).startswith("redis: ") and "\n" not in str(err.value)
        assert not await store.ping()

        srv.start()                                             # back, empty, no scripts
        outcome = await store.admit("k", w, [1])
        assert outcome.allowed and outcome.windows[0].remaining == 49
        assert await store.ping()

        srv.proc.signal(signal.SIGSTOP)                         # hung: the timeout answers
        try:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match="redis"):
                await store.admit("k", w, [1])
            assert time.monotonic() - started < 1.0
        finally:
            srv.proc.signal(signal.SIGCONT)
        assert (await store.admit("k", w, [1])).allowed
    finally:
        await store.close()
        srv.stop()
