"""Spend budgets (extproc.limits: spending, headers, budgets, the RateLimit policy) with a real
Exchange and the memory store: config errors, window state apart from token windows, the
reserve and settle arithmetic against hand-computed Decimals, the 403 for an unpriced model,
429 messages, headers, the output allowance for cut_streams, and exact admission under
concurrency."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import redis.asyncio as aioredis

from extproc import loader
from extproc.exchange import Exchange
from extproc.limits import budgets
from extproc.limits.gcra import Window
from extproc.limits.policy import LimitSpec, RateLimit
from extproc.limits.redis_store import RedisStore
from extproc.limits.settings import configured
from extproc.limits.spending import money, spend_allowance, to_micro, token_allowance
from extproc.limits.store import MemoryStore
from extproc.policy import Reject
from extproc.providers.base import Usage
from extproc.providers.endpoints import PASSTHROUGH, Endpoint
from extproc.schema import ConfigError
from extproc.spend.prices import Price, PriceEntry, PriceTable, Pricing
from tests.harness import RedisServer

D = Decimal
#: model "gpt-4o-m" (one known not to reason: a stream cut short is charged what it
#: delivered): 2.50 per million input tokens, 10.00 per million output tokens
PRICE = Price(input=D("2.50"), output=D("10.00"), cached_input=D("1.25"))
PRICING = Pricing(PriceTable([PriceEntry("openai", "gpt-4o-m", PRICE)]))
#: 2 input tokens ("12345678" at 4 characters per token) and max_tokens 50
BODY = (b'{"model":"gpt-4o-m","max_tokens":50,'
        b'"messages":[{"role":"user","content":"12345678"}]}')
#: worst case: (2 x 2.50 + 50 x 10.00) / 1e6
WORST = D("0.000505")


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def spend(limit: str, per: float = 60.0) -> Window:
    return Window(to_micro(D(limit)), per, budgets.UNIT)


def policy(*specs: LimitSpec, pricing: Pricing | None = PRICING, store: Any = None
           ) -> tuple[RateLimit, MemoryStore, Clock]:
    clock = Clock()
    mem = MemoryStore(clock)
    return RateLimit("openai", "r", specs, store or mem, default_max_tokens=100,
                     pricing=pricing), mem, clock


def exchange(team: str | None = None) -> Exchange:
    """An exchange of a chat request (from `team`: its `x-team` header)."""
    ex = Exchange(route=None)
    ex.request_headers = {":path": "/v1/chat/completions"}
    if team is not None:
        ex.request_headers["x-team"] = team
    return ex


# --- config ------------------------------------------------------------------------------

def _doc(rate: list[dict[str, Any]], **route: Any) -> dict[str, Any]:
    return {"routes": [{"name": "r", "provider": "openai", "rate_limits": rate, **route}]}


def test_spend_config_errors_name_their_path() -> None:
    with pytest.raises(ConfigError) as e:
        loader.parse(_doc([
            {"name": "a", "key": [], "spend": [{"limit": 0, "per": "1d"},
                                               {"limit": "lots", "per": "1d"},
                                               {"limit": 0.0000001, "per": "1d"},
                                               {"limit": 1.5, "per": "soon"},
                                               {"per": "1d"}]},
            {"name": "b", "key": [], "requests": [{"limit": 5, "per": "1m"}],
             "cut_streams": True},
            {"name": "c", "key": [], "tokens": [{"limit": 5, "per": "1m"}],
             "cut_streams": "yes"}]))
    text = "\n".join(e.value.errors)
    for expected in (
            "routes[0].rate_limits[0].spend[0].limit: expected an amount of currency > 0",
            "routes[0].rate_limits[0].spend[1].limit: expected an amount of currency > 0",
            "routes[0].rate_limits[0].spend[2].limit: 1e-07: amounts are counted to the "
            "millionth",
            "routes[0].rate_limits[0].spend[3].per: expected a duration",
            "routes[0].rate_limits[0].spend[4].limit: is required",
            "routes[0].rate_limits[1].cut_streams: cuts a stream at a token or spend budget",
            "routes[0].rate_limits[2].cut_streams: expected true or false"):
        assert expected in text, text


def test_spend_budgets_need_usage_and_get_the_routes_pricing() -> None:
    doc = _doc([{"name": "s", "key": [], "spend": [{"limit": 1, "per": "1d"}]}],
               streams={"usage": False})
    with pytest.raises(ConfigError) as e:
        loader.parse(doc)
    assert "routes[0].rate_limits: spend budgets settle on the provider's usage: they need " \
        "streams.usage: true" in "\n".join(e.value.errors)
    cfg = loader.parse(_doc([{"name": "s", "key": [], "cut_streams": True,
                              "spend": [{"limit": 25.00, "per": "1d"}]}],
                            default_price={"input": 1, "output": 4}))
    rl = cfg.routes["r"].policies[-1]
    assert isinstance(rl, RateLimit) and rl.pricing is cfg.routes["r"].pricing
    (spec,) = rl.limits
    assert spec.spend == (Window(25_000_000, 86400.0, "spend"),) and spec.cut_streams
    assert rl.needs_request_body and rl.needs_response_body and rl.needs_finish


# --- windows -----------------------------------------------------------------------------

def test_spend_windows_never_share_state_with_token_windows() -> None:
    tokens, money_w = Window(10_000, 60.0), Window(10_000, 60.0, "spend")
    assert tokens.suffix == "|per/60.0"       # by kind and period: a changed limit carries
    assert money_w.suffix == "|spend:per/60.0" and tokens != money_w   # the share used
    red = RedisStore("redis://127.0.0.1:1/0")
    names = red.keys("k", [tokens, money_w])
    assert names[0].endswith("}:per/60") and names[1].endswith("}:spend:per/60")
    mem = MemoryStore(Clock())
    assert mem.admit_now("k", [tokens], [10_000]).allowed
    out = mem.admit_now("k", [money_w], [10_000])
    assert out.allowed and out.windows[0].remaining == 0


# --- reservation and settlement ----------------------------------------------------------

async def test_reservation_is_the_worst_case_at_the_models_price() -> None:
    rl, _, _ = policy(LimitSpec("s", (), spend=(spend("0.01"),)))
    ex = exchange()
    await rl.on_request_body(ex, BODY)
    # 0.01 - 0.000505
    assert ex._resp_set["x-ratelimit-limit-spend"] == "0.01"
    assert ex._resp_set["x-ratelimit-remaining-spend"] == "0.009495"
    assert ex._resp_set["x-ratelimit-reset-spend"] == "3.03s"     # 505 of 10000 per 60 s
    assert ex.state["ratelimit"] == {"decision": "allowed", "limit": "s",
                                     "remaining_spend": "0.009495",
                                     "reserved_spend": "0.000505"}
    assert json.loads(json.dumps(ex.state["ratelimit"])) == ex.state["ratelimit"]


DELIVERED = 'data: {"content":"abcdefgh"}\n\ndata: {"content":"x"}\n\n'   # 3 tokens


@pytest.mark.parametrize(("status", "usage", "delivered", "charged"), [
    # (2 x 2.50 + 7 x 10.00) / 1e6
    (200, Usage(input_tokens=2, output_tokens=7, total_tokens=9), None, D("0.000075")),
    # (6 x 2.50 + 4 x 1.25 + 7 x 10.00) / 1e6: cached input at its own price
    (200, Usage(input_tokens=10, cached_input_tokens=4, output_tokens=7), None,
     D("0.00009")),
    # a stream cut short: the prompt estimate (2) plus the delivered output (3)
    (200, None, DELIVERED, D("0.000035")),
    (500, Usage(input_tokens=2, output_tokens=7), None, D(0)),   # upstream error: nothing
    # no reply at all (the client left while the upstream generated), a 504 (it outlasted
    # Envoy's timeout), a whole 2xx reply whose usage was never read: the worst case
    (0, None, None, WORST),
    (504, None, None, WORST),
    (200, None, None, WORST),
])
async def test_settlement_charges_the_real_cost(status: int, usage: Usage | None,
                                                delivered: str | None, charged: Decimal
                                                ) -> None:
    rl, _, _ = policy(LimitSpec("s", (), spend=(spend("0.01"),)))
    ex = exchange()
    await rl.on_request_body(ex, BODY)
    ex.released = True                                       # the request went upstream
    ex.status = status
    ex.response_headers = {"content-type": "text/event-stream"}
    if delivered is not None:
        t = rl.response_transform(ex)
        assert t is not None
        t.feed(delivered.encode())
    if usage is not None:
        ex.state["usage"] = usage
    await rl.on_finish(ex)
    await rl.on_finish(ex)                                   # settles once only
    assert ex.state["spend_charged"] == charged
    probe = exchange()
    await rl.on_request_body(probe, BODY)
    left = D("0.01") - charged - WORST
    assert probe._resp_set["x-ratelimit-remaining-spend"] == money(left)


@pytest.mark.parametrize(("usage", "charged"), [
    (None, WORST),                                                   # nothing read
    (Usage(input_tokens=2, output_tokens=7, total_tokens=9), WORST),  # a partial report
    # (2 x 2.50 + 600 x 10.00) / 1e6: a report past the reservation counts as it is
    (Usage(input_tokens=2, output_tokens=600), D("0.006005")),
])
async def test_a_reply_whose_usage_was_not_read_costs_at_least_the_reservation(
        usage: Usage | None, charged: Decimal) -> None:
    rl, _, _ = policy(LimitSpec("s", (), spend=(spend("0.01"),)))
    ex = exchange()
    await rl.on_request_body(ex, BODY)
    ex.status = 200
    if usage is not None:
        ex.state["usage"] = usage
    ex.state["usage_unread"] = "a gzip-encoded reply"
    await rl.on_finish(ex)
    assert ex.state["spend_charged"] == charged


async def test_tokens_and_spend_settle_together() -> None:
    rl, _, _ = policy(LimitSpec("both", (), tokens=(Window(1000, 3600),),
                                spend=(spend("0.01", 3600),)))
    ex = exchange()
    await rl.on_request_body(ex, BODY)
    assert ex._resp_set["x-ratelimit-remaining-tokens"] == "948"
    ex.status = 200
    ex.state["usage"] = Usage(input_tokens=2, output_tokens=7, total_tokens=9)
    await rl.on_finish(ex)
    assert ex.state["tokens_charged"] == 9 and ex.state["spend_charged"] == D("0.000075")
    probe = exchange()
    await rl.on_request_body(probe, BODY)
    assert probe._resp_set["x-ratelimit-remaining-tokens"] == str(1000 - 9 - 52)
    assert probe._resp_set["x-ratelimit-remaining-spend"] == "0.00942"


async def test_an_unpriced_model_is_refused() -> None:
    rl, mem, _ = policy(LimitSpec("s", (), spend=(spend("1"),)))
    ex = exchange()
    with pytest.raises(Reject) as r:
        await rl.on_request_body(ex, BODY.replace(b'"gpt-4o-m"', b'"gpt-unknown"'))
    assert r.value.status == 403
    assert "'gpt-unknown'" in r.value.message and "prices.models" in r.value.message
    assert "default_price" in r.value.message
    assert ex.metadata["ratelimit"] == "unpriced:s" and len(mem) == 0
    # the route's default_price prices what the table does not
    rl, _, _ = policy(LimitSpec("s", (), spend=(spend("1"),)),
                      pricing=Pricing(PRICING.table, Price(D(1), D(4))))
    ok = exchange()
    await rl.on_request_body(ok, BODY.replace(b'"gpt-4o-m"', b'"gpt-unknown"'))
    # (2 x 1 + 50 x 4) / 1e6 = 0.000202
    assert ok.state["ratelimit"]["reserved_spend"] == "0.000202"


async def test_a_passthrough_is_not_priced_and_costs_nothing() -> None:
    rl, _, _ = policy(LimitSpec("s", (), spend=(spend("1"),)), pricing=Pricing(
        PriceTable([])))                                     # nothing is priced
    ex = exchange()
    ex.request_headers[":path"] = "/v1/models"
    ex.endpoint = Endpoint(PASSTHROUGH)   # (the real one: a fake lacked its name)
    ex.request_ended = True
    await rl.on_request_headers(ex)
    assert ex._resp_set["x-ratelimit-remaining-spend"] == "1.00"
    ex.status = 200
    await rl.on_finish(ex)
    assert "spend_charged" not in ex.state


async def test_refusals_say_which_budget_and_when_it_refills() -> None:
    rl, _, _ = policy(LimitSpec("team-daily", (), spend=(spend("0.001", 86400),)))
    await rl.on_request_body(exchange(), BODY)               # 0.000505 of 0.001
    with pytest.raises(Reject) as r:
        await rl.on_request_body(exchange(), BODY)
    # 10 micro-units over: they drain at 0.001 per 86400 s
    assert r.value.status == 429 and r.value.headers["retry-after"] == "864"
    assert r.value.message == ("spend limit 'team-daily' exceeded: 0.001 USD per 1d; "
                               "retry after 864s")
    assert r.value.headers["x-ratelimit-remaining-spend"] == "0.000495"
    rl, _, _ = policy(LimitSpec("tiny", (), spend=(spend("0.0005"),)))
    with pytest.raises(Reject) as r:
        await rl.on_request_body(exchange(), BODY)
    assert "retry-after" not in r.value.headers
    assert r.value.message == ("request may cost up to 0.000505 USD, more than the whole "
                               "'tiny' budget of 0.0005 USD per 1m")


async def test_a_spend_refusal_refunds_the_limits_that_admitted() -> None:
    first = LimitSpec("a", (), spend=(spend("1"),))
    second = LimitSpec("b", (), requests=(Window(1, 60),))
    rl, _, _ = policy(first, second)
    await rl.on_request_body(exchange(), BODY)
    with pytest.raises(Reject):
        await rl.on_request_body(exchange(), BODY)
    rl.limits = (first,)
    probe = exchange()
    await rl.on_request_body(probe, BODY)
    assert probe._resp_set["x-ratelimit-remaining-spend"] == money(D(1) - 2 * WORST)


# --- output allowance (cut_streams) ------------------------------------------------------

def test_allowance_arithmetic() -> None:
    assert token_allowance(948, 50) == 998
    assert token_allowance(-3, 50) == 50
    # (9495 + 50 x 10) micro-units at 10 micro-units per output token
    assert spend_allowance(9495, 50, PRICE) == 999
    dear = Price(D(1), D(10), reasoning=D(40))       # the dearer of output and reasoning
    assert spend_allowance(9495, 50, dear) == 287    # (9495 + 2000) / 40
    assert spend_allowance(100, 5, Price(D(1), D(0))) is None   # free output: no cut


async def test_output_allowance_is_the_tightest_cut_window() -> None:
    tokens = LimitSpec("t", (), tokens=(Window(1000, 60),), cut_streams=True)
    money_l = LimitSpec("s", (), spend=(spend("0.01"),), cut_streams=True)
    uncut = LimitSpec("u", (), tokens=(Window(100, 60),))
    for specs, allowance in (((tokens,), 998), ((money_l,), 999),
                             ((tokens, money_l), 998), ((uncut,), None)):
        rl, _, _ = policy(*specs)
        ex = exchange()
        await rl.on_request_body(ex, BODY)
        assert ex.state.get("output_allowance") == allowance, specs
    rl, _, _ = policy(LimitSpec("s", (), spend=(spend("0.00102"),), cut_streams=True))
    first, second = exchange(), exchange()
    await rl.on_request_body(first, BODY)
    await rl.on_request_body(second, BODY)
    # the first: (1020 - 505 + 500) / 10; the second: 10 micro-units left, (10 + 500) / 10
    assert first.state["output_allowance"] == 101 and second.state["output_allowance"] == 51


# --- concurrency and listing -------------------------------------------------------------

async def test_concurrent_admissions_admit_exactly_what_fits() -> None:
    rl, _, _ = policy(LimitSpec("s", (), spend=(spend("0.01", 3600),)))

    async def one() -> bool:
        try:
            await rl.on_request_body(exchange(), BODY)
        except Reject:
            return False
        return True

    results = await asyncio.gather(*(one() for _ in range(100)))
    assert results.count(True) == 19                     # 19 x 505 <= 10000 < 20 x 505


async def test_the_memory_store_lists_spend_budgets() -> None:
    spec = LimitSpec("team", ("header:x-team",), spend=(spend("0.01", 3600),),
                     requests=(Window(10, 60),))
    rl, mem, _ = policy(spec)
    ex = exchange("ml")
    await rl.on_request_body(ex, BODY)
    (row,) = await mem.spend_budgets()
    assert row == {"route": "r", "limit": "team", "key": {"header:x-team": "ml"},
                   "currency": "USD", "per": "1h", "budget": "0.01", "spent": "0.000505",
                   "remaining": "0.009495", "reset_s": pytest.approx(181.8)}
    assert "team" in budgets.table([row]) and "0.000505 USD" in budgets.table([row])
    ex.status = 500
    await rl.on_finish(ex)                               # refunded: nothing left to show
    assert await mem.spend_budgets() == []
    assert budgets.table([]).startswith("no spend")


async def test_sweeping_the_memory_store_past_an_idle_spend_budget() -> None:
    """Found by review: once the store held 4096 windows, its sweep compared the drained
    window of an idle spend budget (None) with the clock, and every admission of the
    process failed with a 500 from then on."""
    spec = LimitSpec("team", ("header:x-team",), spend=(spend("0.01", 60),),
                     requests=(Window(100, 3600),))
    rl, mem, clock = policy(spec)
    ex = exchange("ml")
    await rl.on_request_body(ex, BODY)
    ex.released = True
    await rl.on_finish(ex)                               # charged, then idle
    assert len(await mem.spend_budgets()) == 1
    clock.t += 120                                       # the spend window drains
    for i in range(5000):                                # other teams fill the store
        other = exchange(f"t{i}")
        await rl.on_request_body(other, BODY)           # (a refusal would raise)
        other.released = True                            # (it went upstream: charged)
        await rl.on_finish(other)
    teams = {row["key"]["header:x-team"] for row in await mem.spend_budgets()}
    assert len(teams) == 5000 and "ml" not in teams


# --- in Redis ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    srv = RedisServer(tmp_path_factory.mktemp("redis"))
    yield srv.url
    srv.stop()


async def test_replicas_sharing_redis_admit_exactly_what_fits(redis_url: str) -> None:
    team = uuid.uuid4().hex
    stores = [RedisStore(redis_url, timeout_s=5.0) for _ in range(4)]
    spec = LimitSpec("team", ("header:x-team",), spend=(spend("0.01", 3600),))
    replicas = [policy(spec, store=s)[0] for s in stores]

    async def one(i: int) -> Exchange | None:
        ex = exchange(team)
        try:
            await replicas[i % 4].on_request_body(ex, BODY)
        except Reject as r:
            assert r.status == 429 and "spend limit 'team' exceeded" in r.message
            return None
        return ex

    try:
        started = time.monotonic()
        admitted = [ex for ex in await asyncio.gather(*(one(i) for i in range(100)))
                    if ex is not None]
        assert len(admitted) == 19                        # 19 x 505 <= 10000 < 20 x 505
        left = sorted(ex._resp_set["x-ratelimit-remaining-spend"] for ex in admitted)
        assert len(set(left)) == 19                       # serialised: each saw its own
        # settle them all concurrently on a real cost of 0.000075 each
        for ex in admitted:
            ex.status = 200
            ex.state["usage"] = Usage(input_tokens=2, output_tokens=7)
        await asyncio.gather(*(replicas[i % 4].on_finish(ex)
                               for i, ex in enumerate(admitted)))
        rows = [r for r in await stores[0].spend_budgets() if r["key"] == {
            "header:x-team": team}]
        assert len(rows) == 1
        # exactly the 19 real costs (0.001425), less what the budget has refilled since the
        # first admission (GCRA refills continuously: 0.01 an hour, a millionth every 0.36 s;
        # a loaded machine takes that long), read to the nearest millionth
        refilled = D(time.monotonic() - started) * D("0.01") / 3600
        spent, remaining = D(rows[0]["spent"]), D(rows[0]["remaining"])
        assert 19 * D("0.000075") - refilled - D("0.000001") <= spent <= 19 * D("0.000075")
        assert abs(spent + remaining - D("0.01")) <= D("0.000001")   # each rounded
        assert rows[0]["budget"] == "0.01" and rows[0]["per"] == "1h"
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_the_label_lives_as_long_as_the_spend_windows(redis_url: str) -> None:
    store = RedisStore(redis_url, timeout_s=2.0)
    client = aioredis.Redis.from_url(redis_url)
    key = uuid.uuid4().hex
    windows = [Window(10, 3600.0), spend("0.01", 3600)]
    lab = budgets.label("r", "l", ("route",), (key,), "USD", windows)
    assert lab["windows"] == [[10_000, 3600.0]]
    try:
        assert (await store.admit(key, windows, [1, 5000.0], lab)).allowed
        name = store.label_key(key)
        assert json.loads(await client.get(name)) == lab
        spend_key = store.keys(key, windows)[1]
        assert 1_800_000 - 2_000 < await client.pttl(name) <= 1_801_000
        assert abs(await client.pttl(name) - await client.pttl(spend_key)) < 100
        (row,) = [r for r in await store.spend_budgets() if r["key"] == {"route": key}]
        assert row["spent"] == "0.005" and row["remaining"] == "0.005"
        await store.settle(key, windows, [0, 10_000.0], lab)      # a debt: lives longer
        assert await client.pttl(name) > 5_000_000
        await store.settle(key, windows, [0, -100_000.0], lab)    # refunded: the label stays
        assert await client.exists(name) == 1                     # until its own TTL,
        assert [r for r in await store.spend_budgets() if r["key"] == {"route": key}] == []
        # a limit without spend windows writes no label
        other = uuid.uuid4().hex
        assert (await store.admit(other, windows[:1], [1])).allowed
        assert await client.exists(store.label_key(other)) == 0
    finally:
        await client.aclose()
        await store.close()


def test_extproc_spend_needs_a_server_for_memory_budgets(tmp_path: Any, capsys: Any) -> None:
    from extproc.cli import main
    path = tmp_path / "c.yaml"
    path.write_text("limits: {backend: memory}\nroutes: []\n")
    assert main(["spend", "--config", str(path)]) == 2
    assert "read them with --admin" in capsys.readouterr().err
    assert main(["spend", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert main(["spend", "--redis", "redis://127.0.0.1:1/0"]) == 1
    assert "extproc spend: redis: " in capsys.readouterr().err


def test_a_spend_label_keeps_a_bounded_value_of_a_long_key() -> None:
    """A `header:` key value can be kilobytes: the label `extproc spend` shows (kept as long
    as the windows are) keeps its first characters, the bucket its whole value (hashed)."""
    from extproc.limits import budgets, keys
    from extproc.limits.gcra import Window
    long = "x" * 10_000
    lab = budgets.label("r", "spend", ["header:x-team"], [long], "USD",
                        [Window(1000, 60.0, budgets.UNIT)])
    shown = lab["key"]["header:x-team"]
    assert len(shown) == budgets.MAX_LABEL_VALUE and long.startswith(shown[:-1])
    assert keys.limit_key("r", "spend", [long]) != keys.limit_key("r", "spend", [long + "y"])


async def test_two_buckets_never_show_the_same_key() -> None:
    """An absent claim and the string claim `\\-` are two buckets; `extproc spend` shows
    each by its key part as the key spells it (found by review: both showed `\\-`)."""
    from extproc.limits import keys
    mem = MemoryStore(lambda: 1000.0)
    w = (Window(25_000_000, 86400, budgets.UNIT),)
    for part in (keys.ABSENT, keys.claim_part("\\-"), keys.claim_part("ml")):
        mem.admit_now(keys.limit_key("r", "team", [part]), w, [1_000_000.0],
                      budgets.label("r", "team", ["claim:team"], [part], "USD", w))
    rows = await mem.spend_budgets()
    shown = sorted(r["key"]["claim:team"] for r in rows)
    assert shown == sorted(["\\-", "\\\\-", "ml"])
    cells = [line.split()[2] for line in budgets.table(rows).splitlines()[1:]]
    assert len(set(cells)) == 3


def test_extproc_spend_says_when_no_spend_budget_is_configured() -> None:
    """An empty answer from a server whose config sets no spend budget is not "nothing
    spent yet": the table says there is nothing to spend against, and how to set one."""
    none = loader.parse(_doc([{"name": "req", "key": [], "requests": [{"limit": 5,
                                                                        "per": "1m"}]}]))
    two = loader.parse({"routes": [
        {"name": "a", "provider": "openai", "default_price": {"input": 1, "output": 4},
         "rate_limits": [{"name": "s", "key": [], "spend": [{"limit": 1, "per": "1d"},
                                                            {"limit": 5, "per": "30d"}]},
                         {"name": "r", "key": [], "requests": [{"limit": 5, "per": "1m"}]}]},
        {"name": "b", "provider": "auto", "default_price": {"input": 1, "output": 4},
         "rate_limits": [{"name": "s", "key": [], "spend": [{"limit": 1, "per": "1d"}]}]}]})
    assert configured(none.routes) == 0
    assert configured(two.routes) == 2     # one per limit, whatever its windows
    assert budgets.table([], 0).startswith("no spend budgets are configured")
    assert budgets.table([], 2).startswith("no spend recorded")
    assert budgets.table([]).startswith("no spend recorded")   # (unknown: --redis)


def test_the_spend_table_spells_out_what_a_terminal_acts_on() -> None:
    """Found by review: a key value (a claim, a subject) holding a line break forged a row
    of `extproc spend`'s table, and an escape sequence reached the terminal."""
    row = {"route": "r", "limit": "team", "key": {"claim:team": "ml\nr  fake  -  1d",
                                                  "subject": "\x1b[2Jbob"},
           "per": "1d", "budget": "1", "spent": "0", "remaining": "1", "currency": "USD",
           "reset_s": 3600.0}
    text = budgets.table([row])
    assert len(text.splitlines()) == 2 and "\x1b" not in text.replace("\\x1b", "")
    assert "ml\\nr" in text and "\\x1b[2Jbob" in text
