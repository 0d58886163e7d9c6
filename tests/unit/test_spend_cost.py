"""The cost of a request, from each provider's real usage JSON through its adapter's usage
parsing to the exact Decimal, checked against hand-computed values for every usage field
(uncached input, cache read, cache write, output, reasoning); and how the cost is reported
(metadata, state, access log, metrics)."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from extproc import accesslog, metrics
from extproc.llm import transforms as T
from extproc.llm.policy import LLMTraffic, StreamsConfig
from extproc.providers import adapter_for
from extproc.providers.base import Usage
from extproc.spend.cost import as_number, request_cost, team_of
from extproc.spend.prices import Price, PriceEntry, PriceTable, Pricing

D = Decimal

# The price of every part differs, so a token counted in the wrong part changes the sum.
PRICE = Price(input=D("2"), cached_input=D("0.5"), cache_write=D("3"), output=D("10"),
              reasoning=D("20"))

OPENAI_CHAT = {
    "id": "chatcmpl-1", "object": "chat.completion", "model": "o4-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "391"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 2000, "completion_tokens": 500, "total_tokens": 2500,
              "prompt_tokens_details": {"cached_tokens": 1200, "audio_tokens": 0},
              "completion_tokens_details": {"reasoning_tokens": 300, "audio_tokens": 0,
                                            "accepted_prediction_tokens": 0,
                                            "rejected_prediction_tokens": 0}},
}
ANTHROPIC_MESSAGE = {
    "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
    "content": [{"type": "text", "text": "Hi"}], "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 100, "cache_creation_input_tokens": 1000,
              "cache_read_input_tokens": 4000, "output_tokens": 250,
              "cache_creation": {"ephemeral_5m_input_tokens": 1000,
                                 "ephemeral_1h_input_tokens": 0},
              "service_tier": "standard"},
}
GEMINI_RESPONSE = {
    "candidates": [{"content": {"role": "model", "parts": [{"text": "42"}]},
                    "finishReason": "STOP", "index": 0}],
    "usageMetadata": {"promptTokenCount": 3000, "cachedContentTokenCount": 2000,
                      "candidatesTokenCount": 400, "thoughtsTokenCount": 600,
                      "totalTokenCount": 4000},
    "modelVersion": "gemini-2.5-pro",
}


def parsed(provider: str, body: dict[str, Any]) -> Usage:
    return adapter_for(provider).parse_response(json.loads(json.dumps(body)))[2]


def test_openai_cached_and_reasoning_tokens() -> None:
    usage = parsed("openai", OPENAI_CHAT)
    assert PRICE.parts(usage) == {"input": (800, D(2)), "cached_input": (1200, D("0.5")),
                                  "cache_write": (0, D(3)), "output": (200, D(10)),
                                  "reasoning": (300, D(20))}
    # 800*2 + 1200*0.5 + 200*10 + 300*20 = 1600 + 600 + 2000 + 6000 = 10200 per million
    assert PRICE.cost(usage) == D("0.0102")


def test_azure_reads_usage_as_openai_does() -> None:
    assert PRICE.cost(parsed("azure", OPENAI_CHAT)) == D("0.0102")


def test_anthropic_cache_read_and_cache_write() -> None:
    usage = parsed("anthropic", ANTHROPIC_MESSAGE)
    assert (usage.input_tokens, usage.cached_input_tokens, usage.cache_write_input_tokens) \
        == (5100, 4000, 1000)
    assert PRICE.parts(usage) == {"input": (100, D(2)), "cached_input": (4000, D("0.5")),
                                  "cache_write": (1000, D(3)), "output": (250, D(10)),
                                  "reasoning": (0, D(20))}
    # 100*2 + 4000*0.5 + 1000*3 + 250*10 = 200 + 2000 + 3000 + 2500 = 7700 per million
    assert PRICE.cost(usage) == D("0.0077")


def test_anthropic_stream_usage_merged_from_its_events() -> None:
    adapter = adapter_for("anthropic")
    start = adapter.stream_delta(json.dumps({"type": "message_start", "message": {
        **ANTHROPIC_MESSAGE, "usage": {**ANTHROPIC_MESSAGE["usage"], "output_tokens": 1}}}),
        "message_start").usage
    end = adapter.stream_delta(json.dumps({"type": "message_delta", "delta": {
        "stop_reason": "end_turn"}, "usage": {"output_tokens": 250}}), "message_delta").usage
    assert start is not None and end is not None
    usage = adapter.merge_usage(adapter.merge_usage(Usage(), start), end)
    assert PRICE.cost(usage) == D("0.0077")


@pytest.mark.parametrize("provider", ["gemini", "vertex"])
def test_gemini_cached_content_and_thoughts(provider: str) -> None:
    usage = parsed(provider, GEMINI_RESPONSE)
    assert PRICE.parts(usage) == {"input": (1000, D(2)), "cached_input": (2000, D("0.5")),
                                  "cache_write": (0, D(3)), "output": (400, D(10)),
                                  "reasoning": (600, D(20))}
    # 1000*2 + 2000*0.5 + 400*10 + 600*20 = 2000 + 1000 + 4000 + 12000 = 19000 per million
    assert PRICE.cost(usage) == D("0.019")


def test_unset_prices_default_to_input_and_output() -> None:
    price = Price(input=D("1.25"), output=D(10))
    usage = parsed("gemini", GEMINI_RESPONSE)
    # 3000 prompt tokens at 1.25, 1000 output (400 + 600 thoughts) at 10
    assert price.cost(usage) == D("0.01375")


def test_the_reported_number_is_rounded_to_ten_places() -> None:
    assert as_number(D("0.000000000149")) == 1e-10
    assert as_number(D("0.000000000151")) == 2e-10
    assert as_number(D("0.12345678901234")) == 0.123456789
    assert as_number(D("0.0000375")) == 3.75e-05
    assert D(repr(as_number(D("0.0077")))) == D("0.0077")
    assert as_number(D("1e30")) == 1e30


# -- reporting ----------------------------------------------------------------------------


class FakeExchange:
    def __init__(self, model: str, identity: Any = None) -> None:
        self.route_name, self.provider, self.request_id = "spend-r", "anthropic", "rid"
        self.rejection, self.status, self.failed = None, 200, False
        self.started_at = time.monotonic()
        self.ended_at = self.started_at + 0.01
        self.first_token_at = self.first_delivered_at = None
        self.request_headers = {":method": "POST"}
        self.request_body_bytes = self.response_body_bytes = 0
        self.endpoint = None
        self.metadata: dict[str, Any] = {}
        self.state: dict[str, Any] = {"model": model, "identity": identity}


def publish(model: str, identity: Any = None, pricing: Pricing | None = None) -> FakeExchange:
    table = PriceTable([PriceEntry("anthropic", "claude-x*", PRICE)])
    policy = LLMTraffic("anthropic", StreamsConfig(), pricing or Pricing(table), "team")
    ex = FakeExchange(model, identity)
    req = SimpleNamespace(model=model, stream=False)
    report = T.StreamReport(adapter_for("anthropic"), cumulative=False)
    report.usage = parsed("anthropic", ANTHROPIC_MESSAGE)
    policy._meter(ex, req)(report)  # type: ignore[arg-type]
    return ex


def test_a_priced_request_carries_its_cost_everywhere() -> None:
    ex = publish("claude-x-1", SimpleNamespace(subject="s", claims={"team": "search"}))
    assert ex.metadata["cost"] == 0.0077 and ex.metadata["currency"] == "USD"
    assert "cost_status" not in ex.metadata
    assert ex.metadata["cache_write_input_tokens"] == 1000
    assert ex.state["cost"] == D("0.0077") and ex.state["spend_team"] == "search"
    fields = accesslog.fields(ex, "ok")  # type: ignore[arg-type]
    assert (fields["cost"], fields["currency"]) == (0.0077, "USD")
    assert "cost_status" not in fields
    line = json.loads(accesslog.line(ex, "ok"))  # type: ignore[arg-type]
    assert D(repr(line["cost"])) == D("0.0077")
    before = metrics.SPEND.labels("spend-r", "anthropic", "claude-x-1", "search", "USD").value
    metrics.observe_exchange(ex, "ok")  # type: ignore[arg-type]
    after = metrics.SPEND.labels("spend-r", "anthropic", "claude-x-1", "search", "USD").value
    assert after - before == pytest.approx(0.0077)


def test_an_unpriced_model_is_reported_unpriced_never_free() -> None:
    ex = publish("gpt-nothing")
    assert ex.metadata["cost_status"] == "unpriced"
    assert "cost" not in ex.metadata and "cost" not in ex.state
    fields = accesslog.fields(ex, "ok")  # type: ignore[arg-type]
    assert fields["cost_status"] == "unpriced" and "cost" not in fields
    before = metrics.UNPRICED.labels("spend-r", "anthropic", "gpt-nothing").value
    metrics.observe_exchange(ex, "ok")  # type: ignore[arg-type]
    assert metrics.UNPRICED.labels("spend-r", "anthropic", "gpt-nothing").value == before + 1


def test_the_route_default_price_prices_what_the_table_does_not() -> None:
    pricing = Pricing(PriceTable([]), default=Price(input=D(1), output=D(1)))
    ex = publish("gpt-nothing", pricing=pricing)
    # 5100 prompt + 250 output tokens at 1 per million
    assert ex.state["cost"] == D("0.00535") and ex.metadata["cost"] == 0.00535


def test_no_usage_no_cost_and_no_unpriced_count() -> None:
    policy = LLMTraffic("anthropic", StreamsConfig(), Pricing(PriceTable([])), None)
    ex = FakeExchange("m")
    report = T.StreamReport(adapter_for("anthropic"), cumulative=False)
    policy._meter(ex, SimpleNamespace(model="m", stream=True))(report)  # type: ignore[arg-type]
    assert not {"cost", "cost_status"} & (set(ex.metadata) | set(ex.state))


def test_team_label_from_the_claim_bounded() -> None:
    assert team_of(SimpleNamespace(claims={"team": "a"}), "team") == "a"
    assert team_of(SimpleNamespace(claims={"team": 7}), "team") == "7"
    assert team_of(SimpleNamespace(claims={"team": ["a", "b"]}), "team") is None
    assert team_of(SimpleNamespace(claims={}), "team") is None
    assert team_of(None, "team") is None and team_of(SimpleNamespace(claims={"t": 1}), None) \
        is None
    assert metrics.team_label(None) == "-" and metrics.team_label("x" * 200) == "other"
    assert metrics.team_label("search") == "search"


def test_request_cost_uses_the_price_currency() -> None:
    table = PriceTable([PriceEntry("openai", "m", Price(D(1), D(1), currency="EUR"))])
    cost = request_cost(Pricing(table), "openai", "m", Usage(1_000_000, 0))
    assert (cost.amount, cost.currency, cost.fields()) == (D(1), "EUR",
                                                          {"cost": 1.0, "currency": "EUR"})
