"""Replies made later and fetched elsewhere (the Responses API's ``background: true``,
`Adapter.deferred_reply`; found by the deny audit): answered ``queued`` with ``usage: null``,
they would settle on the prompt estimate alone and no reply guard would see them. Default
deny: refused on a route whose token or spend budgets settle, or whose guards read replies
(400, in OpenAI's format, saying why), unless the route sets ``allow_background: true``;
then a budget charges the whole reservation (`limits.deferred`)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from extproc import loader
from extproc.exchange import Exchange
from extproc.guards.policy import Guards
from extproc.limits.gcra import Window
from extproc.limits.policy import LimitSpec, RateLimit
from extproc.limits.spending import to_micro
from extproc.limits.store import MemoryStore
from extproc.policy import Reject
from extproc.providers import AnthropicAdapter, GoogleAdapter, OpenAIAdapter
from extproc.providers.endpoints import classify
from extproc.providers.openai_responses import OpenAIResponsesAdapter
from extproc.reading import canonical_target
from extproc.schema import ConfigError
from extproc.spend.prices import Price, PriceEntry, PriceTable, Pricing

PATH = "/v1/responses"
#: "12345678": 2 input tokens at 4 characters a token, and 50 output: 52 reserved
ASK = {"model": "m", "input": "12345678", "max_output_tokens": 50}


def body(**extra: Any) -> bytes:
    return json.dumps({**ASK, **extra}).encode()


def exchange() -> Exchange:
    ex = Exchange(route=None)
    ex.request_headers = {":path": PATH}
    ex.endpoint = classify("openai", "POST", canonical_target(PATH))
    return ex


def limit(allow: bool = False, **windows: Any) -> RateLimit:
    specs = [LimitSpec("budget", (), **windows)]
    price = Price(input=Decimal("2.50"), output=Decimal("10.00"))
    pricing = Pricing(PriceTable([PriceEntry("openai", "m", price)]))
    return RateLimit("openai", "r", specs, MemoryStore(lambda: 1000.0),
                     default_max_tokens=100, pricing=pricing, allow_background=allow)


TOKENS = {"tokens": (Window(1000, 60),)}
SPEND = {"spend": (Window(to_micro(Decimal("0.01")), 60.0, "spend"),)}


@pytest.mark.parametrize(("value", "deferred"), [
    (True, True), ("true", True), (1, True), (0, True), ({}, True),
    (False, False), (None, False)])
def test_background_set_to_anything_but_false_is_a_deferred_reply(value: Any,
                                                                   deferred: bool) -> None:
    adapter = OpenAIResponsesAdapter("openai")
    reason = adapter.deferred_reply({**ASK, "background": value})
    assert (reason is not None) is deferred
    assert reason is None or "background" in reason
    assert adapter.deferred_reply(dict(ASK)) is None


def test_no_other_endpoint_defers_its_reply() -> None:
    doc = {**ASK, "background": True}
    for adapter in (OpenAIAdapter("openai"), AnthropicAdapter("anthropic"),
                    GoogleAdapter("gemini")):
        assert adapter.deferred_reply(doc) is None


@pytest.mark.parametrize("windows", [TOKENS, SPEND], ids=["tokens", "spend"])
async def test_a_budget_refuses_a_background_request(windows: dict[str, Any]) -> None:
    rl = limit(**windows)
    ex = exchange()
    with pytest.raises(Reject) as err:
        await rl.on_request_body(ex, body(background=True))
    assert err.value.status == 400 and err.value.details == "extproc_deferred_reply"
    assert "background: true" in err.value.message and "budgets" in err.value.message
    assert ex.metadata["ratelimit"] == "deferred:budget"
    # nothing was reserved, and the same request in the foreground is admitted
    await rl.on_request_body(exchange(), body(background=False))


async def test_request_limits_alone_let_a_background_request_through() -> None:
    rl = limit(requests=(Window(10, 60),))
    await rl.on_request_headers(exchange())
    assert not rl.needs_request_body


@pytest.mark.parametrize(("status", "charged"), [(200, 52), (400, 0)])
async def test_an_allowed_background_request_is_charged_its_whole_reservation(
        status: int, charged: int) -> None:
    rl = limit(allow=True, **TOKENS)
    ex = exchange()
    await rl.on_request_body(ex, body(background=True))
    assert ex._resp_set["x-ratelimit-remaining-tokens"] == str(1000 - 52)
    ex.status = status
    ex.response_headers = {"content-type": "application/json"}
    await rl.on_response_headers(ex)
    assert ("usage_unread" in ex.state) is (status == 200)
    if status == 200:
        assert ex.state["usage_unread_kind"] == "deferred"
        assert "background" in ex.metadata["usage_unread"]
    await rl.on_finish(ex)      # no usage came: the queued answer says `usage: null`
    assert ex.state["tokens_charged"] == charged


async def test_an_allowed_background_request_costs_its_reserved_spend() -> None:
    rl = limit(allow=True, **SPEND)
    ex = exchange()
    await rl.on_request_body(ex, body(background=True))
    ex.status = 200
    await rl.on_response_headers(ex)
    await rl.on_finish(ex)
    assert ex.state["spend_charged"] == Decimal("0.000505")   # (2 x 2.50 + 50 x 10) / 1e6


def guards(apply_to: list[str], allow: bool = False) -> Guards:
    cfg = loader.parse({"guards": {"pii": {"detectors": ["email"], "apply_to": apply_to}},
                        "routes": [{"name": "r", "provider": "openai", "guards": ["pii"],
                                    "allow_background": allow}]})
    return next(p for p in cfg.routes["r"].policies if isinstance(p, Guards))


async def test_reply_guards_refuse_a_background_request() -> None:
    g = guards(["request", "response"])
    ex = exchange()
    with pytest.raises(Reject) as err:
        await g.on_request_body(ex, body(background=True))
    assert err.value.status == 400 and err.value.details == "extproc_deferred_reply"
    assert "guard 'pii' reads replies" in err.value.message
    assert ex.metadata["guard_request"] == "pii:rejected:deferred_reply"
    assert await g.on_request_body(exchange(), body()) is None


@pytest.mark.parametrize(("apply_to", "allow"), [(["request"], False),
                                                 (["request", "response"], True)])
async def test_prompt_guards_alone_or_the_routes_allowance_let_it_through(
        apply_to: list[str], allow: bool) -> None:
    assert await guards(apply_to, allow).on_request_body(exchange(),
                                                         body(background=True)) is None


def test_the_route_option_reaches_both_policies() -> None:
    cfg = loader.parse({"guards": {"pii": {"detectors": ["email"]}},
                        "routes": [{"name": "r", "provider": "openai", "guards": ["pii"],
                                    "allow_background": True,
                                    "rate_limits": [{"name": "t", "key": [],
                                                     "tokens": [{"limit": 9, "per": "1m"}]}]}]})
    policies = cfg.routes["r"].policies
    assert all(p.allow_background for p in policies if isinstance(p, RateLimit)
               or (isinstance(p, Guards) and p.side == "request"))
    assert not loader.parse({"routes": [{"name": "r", "provider": "openai", "rate_limits": [
        {"name": "t", "key": [], "tokens": [{"limit": 9, "per": "1m"}]}]}]}
    ).routes["r"].policies[-1].allow_background
    with pytest.raises(ConfigError) as err:
        loader.parse({"routes": [{"name": "r", "provider": "openai",
                                  "allow_background": "yes"}]})
    assert "routes[0].allow_background: expected true or false" in str(err.value)
