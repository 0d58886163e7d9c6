"""GCRA over several windows (extproc.limits.gcra) and the in-memory store
(extproc.limits.store), driven by a fake clock."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from extproc.limits import gcra
from extproc.limits.gcra import Outcome, Window, WindowState
from extproc.limits.store import MemoryStore, window_key

T0 = 1000.0
MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0

_T = TypeVar("_T")


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def done(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a MemoryStore coroutine to its end without an event loop. The store claims every call
    is atomic because it never awaits, so the coroutine must finish on its first step."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise AssertionError("the memory store suspended inside a call")


def new_store(t: float = T0) -> tuple[MemoryStore, Clock]:
    clock = Clock(t)
    return MemoryStore(clock), clock


def admit(store: MemoryStore, key: str, windows: Sequence[Window],
          costs: Sequence[float]) -> Outcome:
    return done(store.admit(key, windows, costs))


def settle(store: MemoryStore, key: str, windows: Sequence[Window],
           deltas: Sequence[float]) -> None:
    done(store.settle(key, windows, deltas))


def peek(store: MemoryStore, key: str, windows: Sequence[Window]) -> tuple[WindowState, ...]:
    """The windows as they stand now, through a zero-cost admission (which takes nothing)."""
    return admit(store, key, windows, [0] * len(windows)).windows


def burst(store: MemoryStore, key: str, windows: Sequence[Window], cap: int = 100_000) -> int:
    """How many unit admissions fit right now (taking them)."""
    for n in range(cap):
        if not admit(store, key, windows, [1] * len(windows)).allowed:
            return n
    raise AssertionError(f"more than {cap} unit admissions fit")


def approx(x: float) -> Any:
    return pytest.approx(x, rel=1e-9, abs=1e-9)


# --- one window: bursts, spacing, refill ---------------------------------------------------

SHAPES = [(1, 1.0), (5, MINUTE), (7, MINUTE), (100, MINUTE), (3, DAY), (1000, HOUR), (60, 0.5)]


@pytest.mark.parametrize(("limit", "period"), SHAPES)
def test_a_burst_takes_exactly_the_limit_then_one_per_interval(limit: int, period: float) -> None:
    store, clock = new_store()
    w = [Window(limit, period)]
    interval = period / limit
    for i in range(limit):
        out = admit(store, "k", w, [1])
        assert out.allowed, i
        assert out.retry_after_s == 0.0
        (s,) = out.windows
        assert s.window == w[0]
        assert s.remaining == limit - 1 - i
        assert s.reset_s == approx((i + 1) * interval)

    denied = admit(store, "k", w, [1])
    assert not denied.allowed
    assert denied.retry_after_s == approx(interval)
    assert denied.windows[0].remaining == 0
    assert denied.windows[0].reset_s == approx(period)

    clock.t = T0 + interval / 2                 # half an interval is not enough
    half = admit(store, "k", w, [1])
    assert not half.allowed
    assert half.retry_after_s == approx(interval / 2)

    clock.t = T0 + interval                     # a whole one is: exactly one more fits
    again = admit(store, "k", w, [1])
    assert again.allowed
    assert again.windows[0].remaining == 0
    after = admit(store, "k", w, [1])
    assert not after.allowed
    assert after.retry_after_s == approx(interval)

    clock.t = T0 + interval + period            # a whole period after the last one: all back
    (s,) = peek(store, "k", w)
    assert s.remaining == limit
    assert s.reset_s == pytest.approx(0.0, abs=1e-9)
    clock.t += 1e-3
    (s,) = peek(store, "k", w)
    assert (s.remaining, s.reset_s) == (limit, 0.0)
    assert burst(store, "k", w) == limit


def test_a_fresh_window_is_full() -> None:
    store, _ = new_store()
    w = [Window(10, MINUTE), Window(1000, DAY)]
    out = admit(store, "k", w, [0, 0])
    assert out.allowed
    assert out.retry_after_s == 0.0
    assert [(s.window, s.remaining, s.reset_s) for s in out.windows] == [
        (w[0], 10, 0.0), (w[1], 1000, 0.0)]


def test_capacity_returns_one_unit_per_interval_while_waiting() -> None:
    store, clock = new_store()
    w = [Window(10, MINUTE)]                    # one unit every 6 s
    assert admit(store, "k", w, [10]).allowed
    for k in range(1, 11):
        clock.t = T0 + 6.0 * k - 0.5
        assert peek(store, "k", w)[0].remaining == k - 1
        clock.t = T0 + 6.0 * k
        (s,) = peek(store, "k", w)
        assert s.remaining == k
        assert s.reset_s == approx(MINUTE - 6.0 * k)
    clock.t = T0 + 10 * MINUTE                  # idle time does not bank more than a window
    assert peek(store, "k", w)[0].remaining == 10
    assert burst(store, "k", w) == 10


def test_a_denial_takes_nothing_and_repeats_the_same_answer() -> None:
    store, clock = new_store()
    w = [Window(4, MINUTE)]
    assert admit(store, "k", w, [4]).allowed
    first = admit(store, "k", w, [3])
    assert not first.allowed
    assert first.retry_after_s == approx(45.0)
    for _ in range(50):                         # hammering while denied does not push it out
        assert admit(store, "k", w, [3]) == first
    clock.t = T0 + 45.0
    assert admit(store, "k", w, [3]).allowed


# --- costs -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("limit", "period"), SHAPES)
def test_a_cost_of_the_whole_limit_fits_once_from_empty(limit: int, period: float) -> None:
    store, clock = new_store()
    w = [Window(limit, period)]
    out = admit(store, "k", w, [limit])
    assert out.allowed
    assert out.windows[0].remaining == 0
    assert out.windows[0].reset_s == approx(period)

    again = admit(store, "k", w, [limit])
    assert not again.allowed
    assert again.retry_after_s == approx(period)
    unit = admit(store, "k", w, [1])
    assert not unit.allowed
    assert unit.retry_after_s == approx(period / limit)

    clock.t = T0 + period
    assert admit(store, "k", w, [limit]).allowed


def test_a_whole_limit_cost_does_not_fit_once_anything_is_used() -> None:
    store, _ = new_store()
    w = [Window(10, MINUTE)]
    assert admit(store, "k", w, [1]).allowed
    out = admit(store, "k", w, [10])
    assert not out.allowed
    assert out.retry_after_s == approx(6.0)
    assert admit(store, "k", w, [9]).allowed


@pytest.mark.parametrize("cost", [11, 10.5, 20, 10**9])
def test_a_cost_above_the_limit_never_fits_and_changes_nothing(cost: float) -> None:
    store, clock = new_store()
    w = [Window(10, MINUTE)]
    out = admit(store, "k", w, [cost])
    assert not out.allowed
    assert out.retry_after_s == math.inf
    assert [(s.remaining, s.reset_s) for s in out.windows] == [(10, 0.0)]
    assert len(store) == 0

    assert admit(store, "k", w, [3]).allowed
    out = admit(store, "k", w, [cost])
    assert not out.allowed
    assert out.retry_after_s == math.inf
    assert out.windows[0].remaining == 7
    assert out.windows[0].reset_s == approx(18.0)

    clock.t = T0 + 10 * DAY                     # waiting never helps
    assert admit(store, "k", w, [cost]).retry_after_s == math.inf
    assert burst(store, "k", w) == 10


def test_an_oversized_cost_in_one_window_blocks_the_others_and_changes_nothing() -> None:
    store, _ = new_store()
    w = [Window(10, MINUTE), Window(100, DAY)]
    assert admit(store, "k", w, [2, 2]).allowed
    out = admit(store, "k", w, [1, 101])
    assert not out.allowed
    assert out.retry_after_s == math.inf
    assert [s.remaining for s in out.windows] == [8, 98]
    # an inf from one window is not lowered by another window's finite wait, in either order
    assert admit(store, "k", w, [9, 101]).retry_after_s == math.inf
    assert admit(store, "k", w[::-1], [101, 9]).retry_after_s == math.inf
    assert [s.remaining for s in peek(store, "k", w)] == [8, 98]


def test_a_zero_cost_always_fits_and_takes_nothing() -> None:
    store, _ = new_store()
    w = [Window(3, MINUTE)]
    assert admit(store, "k", w, [3]).allowed
    for _ in range(10):
        out = admit(store, "k", w, [0])
        assert out.allowed
        assert out.windows[0].remaining == 0
        assert out.windows[0].reset_s == approx(MINUTE)


def test_fractional_costs_add_up() -> None:
    store, _ = new_store()
    w = [Window(2, MINUTE)]
    for _ in range(4):
        assert admit(store, "k", w, [0.5]).allowed
    out = admit(store, "k", w, [0.5])
    assert not out.allowed
    assert out.retry_after_s == approx(15.0)


# --- several windows: all or nothing ---------------------------------------------------------

MIN10 = Window(10, MINUTE)                       # one unit per 6 s
DAY20 = Window(20, DAY)                          # one unit per 4320 s


def test_a_minute_denial_leaves_the_day_untouched() -> None:
    store, _ = new_store()
    w = [MIN10, DAY20]
    for _ in range(10):
        assert admit(store, "k", w, [1, 1]).allowed
    out = admit(store, "k", w, [1, 1])
    assert not out.allowed
    assert out.retry_after_s == approx(6.0)
    assert [s.remaining for s in out.windows] == [0, 10]
    for _ in range(20):
        assert not admit(store, "k", w, [1, 1]).allowed
    minute, day = peek(store, "k", w)
    assert (minute.remaining, day.remaining) == (0, 10)
    assert day.reset_s == approx(10 * 4320.0)
    # the day window on its own still has its 10
    assert burst(store, "k", [DAY20]) == 10


def test_a_day_denial_leaves_the_minute_untouched() -> None:
    store, clock = new_store()
    w = [MIN10, DAY20]
    for _ in range(10):
        assert admit(store, "k", w, [1, 1]).allowed
    clock.t = T0 + MINUTE
    for _ in range(10):
        assert admit(store, "k", w, [1, 1]).allowed
    clock.t = T0 + 2 * MINUTE                   # the minute is full again; the day is spent
    for _ in range(5):
        out = admit(store, "k", w, [1, 1])
        assert not out.allowed
        assert out.retry_after_s == approx(4320.0 - 2 * MINUTE)
    minute, day = peek(store, "k", w)
    assert (minute.remaining, minute.reset_s) == (10, 0.0)
    assert day.remaining == 0

    clock.t = T0 + 4320.0                       # the day's wait is over: one fits, then it waits
    assert admit(store, "k", w, [1, 1]).allowed
    out = admit(store, "k", w, [1, 1])
    assert not out.allowed
    assert out.retry_after_s == approx(4320.0)
    assert [s.remaining for s in out.windows] == [9, 0]


@pytest.mark.parametrize("order", [1, -1])
def test_when_several_windows_deny_the_wait_is_the_longest(order: int) -> None:
    store, _ = new_store()
    w = [MIN10, DAY20][::order]
    costs = [10, 20][::order]
    assert admit(store, "k", w, costs).allowed
    out = admit(store, "k", w, [1, 1])
    assert not out.allowed
    assert out.retry_after_s == approx(4320.0)
    assert [s.remaining for s in out.windows] == [0, 0]


def test_requests_and_tokens_of_one_key_are_all_or_nothing() -> None:
    store, _ = new_store()
    w = [Window(3, MINUTE), Window(1000, MINUTE, "tokens")]   # requests, tokens
    assert admit(store, "k", w, [1, 400]).allowed
    assert admit(store, "k", w, [1, 400]).allowed
    out = admit(store, "k", w, [1, 400])        # tokens say no: the request is not counted
    assert not out.allowed
    assert out.retry_after_s == approx(200 * 0.06)
    assert [s.remaining for s in out.windows] == [1, 200]
    assert admit(store, "k", w, [1, 200]).allowed
    assert [s.remaining for s in peek(store, "k", w)] == [0, 0]
    out = admit(store, "k", w, [1, 0])          # now the requests say no
    assert not out.allowed
    assert out.retry_after_s == approx(20.0)


WINDOWS = st.builds(Window, limit=st.integers(1, 1000),
                    period_s=st.sampled_from([0.5, 1.0, MINUTE, HOUR, DAY])
                    | st.floats(0.01, 1e5, allow_nan=False, allow_infinity=False))


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_several_windows_admit_exactly_when_each_would_alone(data: st.DataObject) -> None:
    windows = data.draw(st.lists(WINDOWS, min_size=1, max_size=4))
    now = data.draw(st.floats(0.0, 1e4))
    tats = [data.draw(st.floats(now - 2 * w.period_s, now + 2 * w.period_s)) for w in windows]
    costs = [data.draw(st.integers(0, 2 * w.limit) | st.floats(0, 2 * w.limit))
             for w in windows]
    out, stored = gcra.admit(tats, windows, costs, now)
    alone = [gcra.admit([t], [w], [c], now) for t, w, c in zip(tats, windows, costs, strict=True)]

    assert out.allowed == all(o.allowed for o, _ in alone)
    assert out.retry_after_s == max(o.retry_after_s for o, _ in alone)
    assert (out.retry_after_s == 0.0) == out.allowed
    if out.allowed:
        assert stored == [s[0] for _, s in alone]
        assert stored == [max(t, now) + c * w.interval
                          for t, w, c in zip(tats, windows, costs, strict=True)]
    else:
        assert stored == tats
        assert out.retry_after_s > 0
    assert out.windows == gcra.states(stored, windows, now)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_a_denied_admission_leaves_every_window_as_it_was(data: st.DataObject) -> None:
    windows = [Window(data.draw(st.integers(1, 20)), MINUTE),
               Window(data.draw(st.integers(1, 50)), HOUR),
               Window(data.draw(st.integers(1, 200)), DAY)]
    store, clock = new_store()
    steps = data.draw(st.lists(st.tuples(st.floats(0, 120), st.integers(0, 25),
                                         st.integers(0, 60), st.integers(0, 250)), max_size=40))
    for dt, *costs in steps:
        clock.t += dt
        before = peek(store, "k", windows)
        out = admit(store, "k", windows, costs)
        if not out.allowed:
            assert out.windows == before
            assert peek(store, "k", windows) == before
        else:
            for b, s, c in zip(before, out.windows, costs, strict=True):
                assert s.remaining == b.remaining - c
                assert s.reset_s == pytest.approx(b.reset_s + c * s.window.interval,
                                                  rel=1e-9, abs=1e-6)


# --- properties of one window ----------------------------------------------------------------

# The exact properties below hold where float error stays far under gcra.py's tolerances (1e-9 s
# in admit, 1e-6 units in remaining): clock values up to 1000 s and intervals of 10 ms or more.
# Much larger clocks break them: see the precision tests below.
PERIODS = st.sampled_from([1.0, MINUTE, HOUR, DAY])
NOWS = st.integers(0, 1000).map(float)
LIMITS = st.integers(1, 100)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), limit=LIMITS, period=PERIODS, now=NOWS)
def test_at_one_instant_admission_is_greedy_and_never_exceeds_the_limit(
        data: st.DataObject, limit: int, period: float, now: float) -> None:
    costs = data.draw(st.lists(st.integers(0, limit) | st.integers(limit + 1, 3 * limit),
                               max_size=60))
    store, _ = new_store(now)
    w = [Window(limit, period)]
    interval = period / limit
    used = 0
    for cost in costs:
        out = admit(store, "k", w, [cost])
        fits = used + cost <= limit
        assert out.allowed == fits, (used, cost)
        if fits:
            used += cost
        elif cost > limit:
            assert out.retry_after_s == math.inf
        else:
            assert out.retry_after_s == pytest.approx((used + cost - limit) * interval,
                                                      rel=1e-6)
        assert out.windows[0].remaining == limit - used
        assert out.windows[0].reset_s == pytest.approx(used * interval, rel=1e-9, abs=1e-9)
    assert used <= limit


@settings(max_examples=150, deadline=None)
@given(limit=LIMITS, period=PERIODS, now=NOWS,
       ops=st.lists(st.tuples(st.sampled_from(["admit", "wait", "refund", "charge"]),
                              st.floats(0, 2, allow_nan=False)), max_size=50),
       charges=st.booleans())
# a second 1/s admission 10 us early lands within the tolerance, just past the line
@example(limit=1, period=1.0, now=0.0, ops=[("admit", 1.0), ("wait", 0.99999), ("admit", 1.0)],
         charges=False)
def test_remaining_and_reset_stay_in_bounds(limit: int, period: float, now: float,
                                            ops: list[tuple[str, float]], charges: bool) -> None:
    w = Window(limit, period)
    tat = now
    for op, x in ops:
        if op == "admit":
            _, (tat,) = gcra.admit([tat], [w], [round(x * limit)], now)
        elif op == "wait":
            now += x * period
        elif op == "refund":
            tat = gcra.settle(tat, w, -x * limit, now)
        elif charges:
            tat = gcra.settle(tat, w, x * limit, now)
        (s,) = gcra.states([tat], [w], now)
        assert 0 <= s.remaining <= limit
        assert s.reset_s >= 0.0
        assert s.reset_s == max(0.0, tat - now)
        if not charges:  # admissions and refunds never make a debt beyond the tolerance:
            # an admission may land up to gcra.tolerance(w) past the line (float rounding
            # must never refuse the last unit of a burst), e.g. a second 1/s request 10 us
            # early
            assert s.reset_s <= period + gcra.tolerance(w) + 1e-9
        if s.reset_s > period + 1e-9:           # in debt: nothing fits
            assert s.remaining == 0
        if s.reset_s == 0.0:
            assert s.remaining == limit


@settings(max_examples=150, deadline=None)
@given(limit=LIMITS, period=PERIODS, now=NOWS,
       ops=st.lists(st.tuples(st.sampled_from(["admit", "wait", "refund", "charge"]),
                              st.integers(0, 400)), max_size=30))
def test_remaining_is_what_fits(limit: int, period: float, now: float,
                                ops: list[tuple[str, int]]) -> None:
    """`remaining` promises the units that would still fit now: that many do, one more does not
    (whole-unit costs, waits in whole intervals and in odd fractions of the period)."""
    w = Window(limit, period)
    tat = now
    for op, x in ops:
        if op == "admit":
            _, (tat,) = gcra.admit([tat], [w], [x % (limit + 1)], now)
        elif op == "wait":
            now += (x % 7) * w.interval + (x // 7) * period / 57
        elif op == "refund":
            tat = gcra.settle(tat, w, -(x % (limit + 1)), now)
        else:
            tat = gcra.settle(tat, w, x % (limit + 1), now)
        (s,) = gcra.states([tat], [w], now)
        zero_fits = gcra.admit([tat], [w], [0], now)[0].allowed
        if not zero_fits:                       # in debt
            assert s.remaining == 0
        assert gcra.admit([tat], [w], [s.remaining], now)[0].allowed == zero_fits
        assert not gcra.admit([tat], [w], [s.remaining + 1], now)[0].allowed


@settings(max_examples=150, deadline=None)
@given(limit=st.integers(1, 100), period=PERIODS, now=NOWS,
       steps=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 120)), max_size=60))
def test_any_stretch_of_time_admits_at_most_a_burst_plus_its_rate(
        limit: int, period: float, now: float, steps: list[tuple[int, int]]) -> None:
    """Over admissions at non-decreasing times, the costs admitted from t1 to t2 (both ends
    included) never add up to more than limit + (t2 - t1) / interval."""
    store, clock = new_store(now)
    w = [Window(limit, period)]
    interval = period / limit
    admitted: list[tuple[float, int]] = []
    for tick, cost in steps:
        clock.t += tick * interval / 7
        if admit(store, "k", w, [cost % (limit + 2)]).allowed:
            admitted.append((clock.t, cost % (limit + 2)))
    for j in range(len(admitted)):
        total = 0
        for k in range(j, len(admitted)):
            total += admitted[k][1]
            assert total <= limit + (admitted[k][0] - admitted[j][0]) / interval + 1e-6


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_waiting_out_retry_after_is_enough_and_no_less_is(data: st.DataObject) -> None:
    windows = data.draw(st.lists(st.builds(Window, limit=LIMITS,
                                           period_s=PERIODS), min_size=1, max_size=3))
    now = data.draw(NOWS)
    tats = [now + data.draw(st.floats(0, 1.5)) * w.period_s for w in windows]
    costs = [data.draw(st.integers(0, w.limit)) for w in windows]
    out, _ = gcra.admit(tats, windows, costs, now)
    if out.allowed:
        return
    retry = out.retry_after_s
    assert 0 < retry < math.inf
    assert gcra.admit(tats, windows, costs, now + retry)[0].allowed
    # short by more than the slack gcra.tolerance allows (a ten-thousandth of a unit)
    short = max(retry * 1e-3, 2 * max(gcra.tolerance(w) for w in windows))
    if retry > short:
        early = gcra.admit(tats, windows, costs, now + retry - short)[0]
        assert not early.allowed
        assert early.retry_after_s == pytest.approx(short, rel=1e-3, abs=1e-6)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_expiry_is_when_the_state_is_as_good_as_fresh(data: st.DataObject) -> None:
    windows = data.draw(st.lists(st.builds(Window, limit=LIMITS,
                                           period_s=PERIODS), min_size=1, max_size=3))
    now = data.draw(NOWS)
    tats = [now + data.draw(st.floats(-2, 2)) * w.period_s for w in windows]
    ttl = gcra.expiry(tats, now)
    assert ttl >= 0.0
    assert ttl == max(0.0, *(t - now for t in tats))
    later = now + ttl
    for s in gcra.states(tats, windows, later):
        assert s.remaining == s.window.limit
        assert s.reset_s == pytest.approx(0.0, abs=1e-9)
    assert gcra.expiry([], now) == 0.0


# --- float precision at large clock values ---------------------------------------------------
# A TAT is an absolute time, so it carries rounding error of the order of ulp(now): 1.1e-13 s at
# a clock of 1000, 1.2e-10 s at 6e5 (a memory store 7 days old), 4.7e-10 s at 2.6e6 (30 days).
# TAT rounding grows with the clock value and a burst accumulates it once per admission;
# admit() allows a ten-thousandth of a unit of slack and remaining() a thousandth, so even a
# store running for weeks, with token-sized intervals (1e7 tokens a minute: 6e-6 s), counts
# exactly.


def test_a_burst_thirty_days_into_the_clock_takes_the_whole_limit() -> None:
    store, _ = new_store(30 * DAY)              # a memory store 30 days old
    w = [Window(100, MINUTE)]
    assert burst(store, "k", w) == 100


def test_remaining_counts_every_token_seven_days_into_the_clock() -> None:
    store, _ = new_store(7 * DAY)
    w = [Window(10_000_000, MINUTE)]            # tokens per minute
    assert admit(store, "k", w, [1000]).windows[0].remaining == 9_999_000
    assert admit(store, "k", w, [9_999_000]).allowed


@pytest.mark.parametrize("now", [1000.1, 1_000_000.0, 30 * DAY])
def test_a_fresh_token_window_is_full_whatever_the_clock_reads(now: float) -> None:
    store, _ = new_store(now)
    w = [Window(1_000_000, MINUTE)]
    assert peek(store, "k", w)[0].remaining == 1_000_000
    assert admit(store, "k", w, [1000]).windows[0].remaining == 999_000


# --- settle: refunds and debts ---------------------------------------------------------------

W10 = [Window(10, MINUTE)]                       # one unit per 6 s


async def test_a_refund_restores_exactly_what_it_returns() -> None:
    store, _ = new_store()
    assert admit(store, "k", W10, [4]).allowed
    assert peek(store, "k", W10)[0].remaining == 6
    await store.settle("k", W10, [-3])
    (s,) = peek(store, "k", W10)
    assert s.remaining == 9
    assert s.reset_s == approx(6.0)
    assert burst(store, "k", W10) == 9


async def test_a_refund_beyond_what_was_spent_stops_at_a_full_window() -> None:
    store, clock = new_store()
    assert admit(store, "k", W10, [2]).allowed
    await store.settle("k", W10, [-5])
    (s,) = peek(store, "k", W10)
    assert (s.remaining, s.reset_s) == (10, 0.0)
    assert burst(store, "k", W10) == 10

    await store.settle("fresh", W10, [-100])    # nothing spent: nothing to lend
    assert burst(store, "fresh", W10) == 10

    assert admit(store, "late", W10, [10]).allowed
    clock.t = T0 + MINUTE                       # already refilled: a late refund adds nothing
    await store.settle("late", W10, [-10])
    assert burst(store, "late", W10) == 10


async def test_a_refund_after_some_refill_returns_only_what_is_still_out() -> None:
    store, clock = new_store()
    assert admit(store, "k", W10, [10]).allowed
    clock.t = T0 + 30.0                         # 5 units have come back by themselves
    await store.settle("k", W10, [-3])
    assert peek(store, "k", W10)[0].remaining == 8
    await store.settle("k", W10, [-3])          # only 2 were still out
    assert peek(store, "k", W10)[0].remaining == 10
    assert burst(store, "k", W10) == 10


async def test_a_charge_beyond_the_window_is_a_debt_to_wait_out() -> None:
    store, clock = new_store()
    assert admit(store, "k", W10, [4]).allowed
    await store.settle("k", W10, [16])          # 20 units in all: 10 more than a window
    debt = 10 * 6.0

    zero = admit(store, "k", W10, [0])
    assert not zero.allowed
    assert zero.retry_after_s == approx(debt)
    (s,) = zero.windows
    assert s.remaining == 0
    assert s.reset_s == approx(MINUTE + debt)   # past the period while in debt

    unit = admit(store, "k", W10, [1])
    assert not unit.allowed
    assert unit.retry_after_s == approx(debt + 6.0)

    clock.t = T0 + debt                         # the debt is paid; the window is empty, not full
    zero = admit(store, "k", W10, [0])
    assert zero.allowed
    assert zero.windows[0].remaining == 0
    assert not admit(store, "k", W10, [1]).allowed

    clock.t = T0 + debt + 6.0
    assert admit(store, "k", W10, [1]).allowed
    assert not admit(store, "k", W10, [1]).allowed

    clock.t = T0 + debt + 6.0 + MINUTE
    assert peek(store, "k", W10)[0].remaining == 10
    assert burst(store, "k", W10) == 10


async def test_a_charge_on_an_idle_window_starts_from_now() -> None:
    store, clock = new_store()
    assert admit(store, "k", W10, [10]).allowed
    clock.t = T0 + 10 * MINUTE
    await store.settle("k", W10, [3])
    (s,) = peek(store, "k", W10)
    assert s.remaining == 7
    assert s.reset_s == approx(18.0)


async def test_a_charge_bigger_than_the_window_on_a_fresh_key() -> None:
    store, clock = new_store()
    await store.settle("k", W10, [25])
    out = admit(store, "k", W10, [1])
    assert not out.allowed
    assert out.retry_after_s == approx(16 * 6.0)
    clock.t = T0 + 16 * 6.0
    assert admit(store, "k", W10, [1]).allowed


async def test_a_zero_delta_changes_and_stores_nothing() -> None:
    store, _ = new_store()
    await store.settle("k", W10, [0])
    assert len(store) == 0
    assert admit(store, "k", W10, [4]).allowed
    await store.settle("k", W10, [0])
    assert peek(store, "k", W10)[0].remaining == 6


async def test_settle_moves_each_window_by_its_own_delta() -> None:
    store, _ = new_store()
    w = [Window(10, MINUTE), Window(1000, MINUTE, "tokens")]
    assert admit(store, "k", w, [1, 500]).allowed
    await store.settle("k", w, [0, -300])
    assert [s.remaining for s in peek(store, "k", w)] == [9, 800]
    await store.settle("k", w, [2, 100])
    assert [s.remaining for s in peek(store, "k", w)] == [7, 700]


@settings(max_examples=200, deadline=None)
@given(data=st.data(), tat_off=st.floats(-2, 3), delta=st.floats(-3, 3), now=NOWS)
def test_settle_arithmetic(data: st.DataObject, tat_off: float, delta: float,
                           now: float) -> None:
    w = data.draw(st.builds(Window, limit=LIMITS, period_s=PERIODS))
    tat = now + tat_off * w.period_s
    moved = gcra.settle(tat, w, delta * w.limit, now)
    if delta < 0:
        assert moved >= now                     # never lends more than a full window
        assert moved == max(now, max(tat, now) + delta * w.limit * w.interval)
        assert moved <= max(tat, now)
    else:
        assert moved == max(tat, now) + delta * w.limit * w.interval
    assert gcra.states([moved], [w], now)[0].remaining <= w.limit


# --- reserve, then settle with the actual cost -----------------------------------------------

@pytest.mark.parametrize(("estimate", "actual", "remaining", "debt_units"), [
    (500, 200, 800, 0),
    (200, 500, 500, 0),
    (300, 300, 700, 0),
    (1000, 0, 1000, 0),
    (0, 1000, 0, 0),
    (300, 1500, 0, 500),
])
async def test_reserve_then_settle_charges_the_actual_cost(
        estimate: int, actual: int, remaining: int, debt_units: int) -> None:
    store, _ = new_store()
    w = [Window(1000, MINUTE)]                  # 60 ms per token
    assert admit(store, "k", w, [estimate]).allowed
    await store.settle("k", w, [actual - estimate])
    out = admit(store, "k", w, [0])
    assert out.windows[0].remaining == remaining
    assert out.windows[0].reset_s == approx(actual * 0.06)
    if debt_units:
        assert not out.allowed
        assert out.retry_after_s == approx(debt_units * 0.06)
    else:
        assert burst(store, "k", w) == remaining


@settings(max_examples=200, deadline=None)
@given(data=st.data(), limit=st.integers(1, 10_000), period=PERIODS)
def test_reserve_then_settle_leaves_exactly_the_actual_cost(
        data: st.DataObject, limit: int, period: float) -> None:
    used = data.draw(st.integers(0, limit), label="used")
    estimate = data.draw(st.integers(0, limit - used), label="estimate")
    actual = data.draw(st.integers(0, 3 * limit), label="actual")
    store, clock = new_store()
    w = [Window(3 * limit, period), Window(limit, period, "tokens")]  # requests, tokens
    interval = period / limit
    assert admit(store, "k", w, [1, used]).allowed
    assert admit(store, "k", w, [1, estimate]).allowed
    settle(store, "k", w, [0, actual - estimate])

    total = used + actual
    out = admit(store, "k", w, [0, 0])
    requests, tokens = out.windows
    assert requests.remaining == 3 * limit - 2
    assert tokens.remaining == max(0, limit - total)
    assert tokens.reset_s == pytest.approx(total * interval, rel=1e-9, abs=1e-9)
    if total > limit:
        assert not out.allowed
        assert out.retry_after_s == pytest.approx((total - limit) * interval, rel=1e-9)
        clock.t += out.retry_after_s
        assert admit(store, "k", w, [0, 0]).allowed
        assert not admit(store, "k", w, [0, 1]).allowed
    else:
        assert out.allowed
        assert admit(store, "k", w, [0, limit - total]).allowed
        assert not admit(store, "k", w, [0, 1]).allowed


async def test_reserve_then_settle_while_the_window_drains() -> None:
    store, clock = new_store()
    w = [Window(1000, MINUTE)]
    assert admit(store, "k", w, [800]).allowed  # TAT = T0 + 48
    clock.t = T0 + 12.0                         # 200 tokens have drained meanwhile
    await store.settle("k", w, [300 - 800])     # actual 300: as if 300 had been taken at T0
    (s,) = peek(store, "k", w)
    assert s.remaining == 900
    assert s.reset_s == approx(6.0)


# --- the memory store ------------------------------------------------------------------------

def test_keys_are_independent() -> None:
    store, _ = new_store()
    assert burst(store, "openai/per-user/alice", W10) == 10
    assert peek(store, "openai/per-user/bob", W10)[0].remaining == 10
    assert peek(store, "anthropic/per-user/alice", W10)[0].remaining == 10
    assert burst(store, "openai/per-user/bob", W10) == 10
    assert not admit(store, "openai/per-user/alice", W10, [1]).allowed


def test_windows_of_one_key_are_independent() -> None:
    store, _ = new_store()
    a, b = Window(10, MINUTE), Window(5, HOUR)
    assert burst(store, "k", [a]) == 10
    assert burst(store, "k", [b]) == 5
    out = admit(store, "k", [a, b], [0, 0])
    assert [s.remaining for s in out.windows] == [0, 0]


@pytest.mark.parametrize("changed", [Window(10, 2 * MINUTE), Window(10, 59.5)])
def test_changing_a_windows_period_starts_it_fresh(changed: Window) -> None:
    store, _ = new_store()
    old = Window(10, MINUTE)
    assert window_key("k", old) != window_key("k", changed)
    assert burst(store, "k", [old]) == 10
    assert burst(store, "k", [changed]) == changed.limit
    assert not admit(store, "k", [old], [1]).allowed     # the old shape kept its state


#: (units used of 10 a minute, the new limit, what is left at once after the change)
LIMIT_CHANGES = [(10, 5, 0), (8, 5, 0), (4, 5, 1), (10, 20, 10), (5, 20, 15), (0, 5, 5),
                 (10, 100, 90)]


@pytest.mark.parametrize(("used", "new_limit", "left"), LIMIT_CHANGES)
def test_changing_a_windows_limit_carries_the_units_used(used: int, new_limit: int,
                                                         left: int) -> None:
    """Found by the config audit: the state was named by the limit, so lowering a limit (or
    a spend budget) by a reload handed every key a fresh window at the new value. The units
    used now carry over: a lowered limit is never a fresh one, and a raised one (to unblock
    a team) gives the difference at once."""
    store, clock = new_store()
    old, changed = Window(10, MINUTE), Window(new_limit, MINUTE)
    assert window_key("k", old) == window_key("k", changed)
    if used:
        assert admit(store, "k", [old], [used]).allowed
    assert peek(store, "k", [changed])[0].remaining == left
    assert burst(store, "k", [changed]) == left
    if used > new_limit:   # over the new limit: it waits out the units past it, and one
        clock.t += (used - new_limit + 1) * MINUTE / new_limit
        assert admit(store, "k", [changed], [1]).allowed


def test_a_lowered_limit_drains_at_its_own_rate_after_a_refusal() -> None:
    """Found by the second review: the units carried over were rescaled on reading only,
    and a refusal writes nothing, so they went on draining at the old limit's rate while
    Retry-After said the new one's. The refusal keeps the rescaled state."""
    store, clock = new_store()
    old, lowered = Window(10, MINUTE), Window(5, MINUTE)
    assert admit(store, "k", [old], [8]).allowed
    refused = admit(store, "k", [lowered], [1])
    assert not refused.allowed and refused.retry_after_s == pytest.approx(48)
    clock.t += 24
    assert not admit(store, "k", [lowered], [1]).allowed
    clock.t += 24.001
    assert admit(store, "k", [lowered], [1]).allowed


def test_the_same_shape_keeps_its_state() -> None:
    store, _ = new_store()
    assert window_key("k", Window(10, 60)) == window_key("k", Window(10, 60.0))
    assert admit(store, "k", [Window(10, 60)], [4]).allowed
    assert peek(store, "k", [Window(10, 60.0)])[0].remaining == 6


def test_periods_that_differ_past_six_digits_are_different_windows() -> None:
    old, changed = Window(1, 1_000_000), Window(1, 1_000_001)
    store, _ = new_store()
    assert admit(store, "k", [old], [1]).allowed
    assert window_key("k", old) != window_key("k", changed)
    assert admit(store, "k", [changed], [1]).allowed


def test_sweeping_drops_expired_keys_and_keeps_live_ones() -> None:
    store, clock = new_store()
    short, long = [Window(10, MINUTE)], [Window(10, DAY)]
    for i in range(3000):
        assert admit(store, f"old{i}", short, [1]).allowed   # TAT T0 + 6
    for i in range(10):
        assert admit(store, f"live{i}", long, [3]).allowed   # TAT T0 + 25920
    assert len(store) == 3010

    clock.t = T0 + MINUTE                       # past every short TAT, before the long ones
    for n in range(1, 20_000):
        before = len(store)
        assert admit(store, f"new{n}", short, [2]).allowed
        if len(store) < before:
            break
    else:
        pytest.fail("the store never swept")
    assert len(store) <= n + 10                 # only the new and the live keys are left

    for i in range(10):                         # live keys kept their state
        assert peek(store, f"live{i}", long)[0].remaining == 7
    for k in (1, n // 2, n):                    # so did the keys admitted since
        assert peek(store, f"new{k}", short)[0].remaining == 8
    assert peek(store, "old0", short)[0].remaining == 10    # swept keys are simply fresh
    assert burst(store, "old1", short) == 10
    assert burst(store, f"new{n}", short) == 8
    assert burst(store, "live0", long) == 7


def test_a_settle_also_sweeps() -> None:
    store, clock = new_store()
    for i in range(5000):
        settle(store, f"old{i}", W10, [1])
    clock.t = T0 + MINUTE
    size = len(store)
    for n in range(1, 20_000):
        settle(store, f"new{n}", W10, [1])
        if len(store) < size + n:
            break
    else:
        pytest.fail("the store never swept")
    assert len(store) <= n
    assert peek(store, "old0", W10)[0].remaining == 10
    assert peek(store, f"new{n}", W10)[0].remaining == 9


def test_the_store_stays_bounded_when_keys_keep_expiring() -> None:
    store, clock = new_store()
    biggest = 0
    for round_ in range(6):
        for i in range(3000):
            assert admit(store, f"r{round_}/{i}", W10, [1]).allowed
            biggest = max(biggest, len(store))
        clock.t += MINUTE
    assert biggest <= 8192
    assert len(store) < 6 * 3000


def test_the_default_clock_is_monotonic_and_counts_from_the_stores_start() -> None:
    store = MemoryStore()
    first = store.clock()
    assert 0.0 <= first < 60.0                  # small numbers keep float steps fine
    w = [Window(2, MINUTE)]
    assert admit(store, "k", w, [1]).allowed
    assert admit(store, "k", w, [1]).allowed
    out = admit(store, "k", w, [1])
    assert not out.allowed
    assert 29.0 < out.retry_after_s <= 30.0
    assert store.clock() >= first


# --- concurrency on the event loop -----------------------------------------------------------

async def test_concurrent_admissions_take_exactly_the_limit() -> None:
    store, _ = new_store()
    w = [Window(100, MINUTE)]
    outs = await asyncio.gather(*(store.admit("k", w, [1]) for _ in range(500)))
    assert sum(o.allowed for o in outs) == 100
    assert all(o.retry_after_s > 0 for o in outs if not o.allowed)
    assert peek(store, "k", w)[0].remaining == 0


async def test_concurrent_admissions_over_two_windows() -> None:
    store, _ = new_store()
    w = [Window(100, MINUTE), Window(1000, DAY)]
    outs = await asyncio.gather(*(store.admit("k", w, [1, 15]) for _ in range(500)))
    assert sum(o.allowed for o in outs) == 66
    assert [s.remaining for s in peek(store, "k", w)] == [34, 10]


async def test_concurrent_reserve_and_settle_never_overdraw() -> None:
    store, _ = new_store()
    w = [Window(1000, MINUTE)]

    async def call() -> bool:
        out = await store.admit("k", w, [10])       # reserve 10 tokens
        if not out.allowed:
            return False
        await asyncio.sleep(0)                      # the upstream answers
        await store.settle("k", w, [-5])           # it used 5
        return True

    results = await asyncio.gather(*(call() for _ in range(500)))
    allowed = sum(results)
    assert 100 <= allowed <= 199
    assert peek(store, "k", w)[0].remaining == 1000 - 5 * allowed
