"""The shipped price table (extproc/spend/prices.yaml), the script that regenerates it from
LiteLLM's price file, the config's `prices:` over it, and `spend:`; errors named by path."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from extproc.config import PROVIDERS
from extproc.loader import parse
from extproc.schema import Checker, ConfigError
from extproc.spend.prices import PriceTable
from extproc.spend.settings import DEFAULTS_FILE, default_table, parse_prices, read_table

D = Decimal
ROOT = Path(__file__).resolve().parents[2]
LITELLM_JSON = Path("/work/main/bench/.venv-litellm/lib/python3.11/site-packages/litellm/"
                    "model_prices_and_context_window_backup.json")


def _script() -> Any:
    spec = importlib.util.spec_from_file_location("prices_from_litellm",
                                                  ROOT / "scripts/prices_from_litellm.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_every_shipped_entry_parses_and_names_its_source() -> None:
    raw = yaml.safe_load(DEFAULTS_FILE.read_text())
    table = read_table(DEFAULTS_FILE)
    assert len(table.entries) >= sum(len(m["providers"]) for m in raw["models"]) > 100
    assert "LiteLLM 1.106.12" in raw["source"] and raw["generated"] == dt.date(2026, 12, 3)
    for entry in table.entries:
        assert entry.price.input >= 0 and entry.price.output >= 0
        assert entry.source == raw["source"]


def test_all_five_providers_are_covered() -> None:
    table = default_table()
    assert {e.provider for e in table.entries} == set(PROVIDERS)
    for provider, model in [("openai", "gpt-4o"), ("openai", "gpt-5"), ("openai", "o3"),
                            ("openai", "o4-mini"), ("openai", "gpt-4.1-mini"),
                            ("azure", "gpt-4o-mini"), ("azure", "gpt-5"),
                            ("anthropic", "claude-sonnet-4-5"), ("anthropic", "claude-opus-4-5"),
                            ("anthropic", "claude-haiku-4-5"), ("gemini", "gemini-2.5-pro"),
                            ("gemini", "gemini-2.5-flash"), ("gemini", "gemini-2.5-flash-lite"),
                            ("vertex", "gemini-2.5-pro"), ("vertex", "gemini-2.5-flash")]:
        assert table.lookup(provider, model) is not None, (provider, model)


@pytest.mark.parametrize(("provider", "model", "entry", "input_", "output"), [
    ("openai", "gpt-4o-2024-08-06", "gpt-4o-20*", "2.5", "10"),
    ("openai", "gpt-4o-2024-05-13", "gpt-4o-2024-05-13", "5", "15"),   # priced apart
    ("openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini-20*", "0.15", "0.6"),  # not gpt-4o's
    ("azure", "gpt-4.1-2025-04-14", "gpt-4.1-20*", "2", "8"),
    ("openai", "gpt-5-mini-2025-08-07", "gpt-5-mini-20*", "0.25", "2"),
    ("anthropic", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5-20*", "3", "15"),
    ("anthropic", "claude-haiku-4-5-20251001", "claude-haiku-4-5-20*", "1", "5"),
    ("anthropic", "claude-opus-4-5-20251101", "claude-opus-4-5-20*", "5", "25"),
])
def test_dated_names_land_on_their_model(provider: str, model: str, entry: str, input_: str,
                                         output: str) -> None:
    found = default_table().find(provider, model)
    assert found is not None and found.model == entry
    assert (found.price.input, found.price.output) == (D(input_), D(output))


def test_anthropic_entries_price_cache_reads_and_writes() -> None:
    price = default_table().lookup("anthropic", "claude-sonnet-4-5")
    assert price is not None
    assert (price.input, price.cached_input, price.cache_write, price.output) == (
        D(3), D("0.3"), D("3.75"), D(15))


def test_no_price_for_unknown_models_or_other_providers() -> None:
    table = default_table()
    assert table.lookup("openai", "no-such-model") is None
    assert table.lookup("anthropic", "gpt-4o") is None    # a provider prices its own models
    assert table.lookup("openai", None) is None


def test_config_entries_override_and_extend_the_shipped_ones() -> None:
    c = Checker()
    table = parse_prices(c, {"models": [
        {"provider": "openai", "model": "gpt-4o", "input": 1, "output": 2},
        {"provider": "azure", "model": "my-deployment", "input": "0.5", "output": 0.3}]})
    assert not c.errors
    got = table.lookup("openai", "gpt-4o")
    assert got is not None and (got.input, got.output) == (D(1), D(2))
    assert table.lookup("openai", "gpt-4o-2024-08-06").input == D("2.5")   # type: ignore[union-attr]
    mine = table.lookup("azure", "my-deployment")
    assert mine is not None and mine.output == D("0.3")     # read as written, not as a float
    assert parse_prices(Checker(), {"defaults": False, "models": []}).lookup(
        "openai", "gpt-4o") is None


def test_a_config_price_since_a_future_date_is_ignored_until_then() -> None:
    c = Checker()
    table = parse_prices(c, {"models": [
        {"provider": "openai", "model": "gpt-4o", "input": 1, "output": 2,
         "since": "2999-01-01"}]})
    assert not c.errors
    assert table.lookup("openai", "gpt-4o").input == D("2.5")   # type: ignore[union-attr]
    later = PriceTable(table.entries, table.fallback, today=lambda: dt.date(2999, 1, 1))
    assert later.lookup("openai", "gpt-4o").input == D(1)   # type: ignore[union-attr]


def test_the_configured_currency_holds_without_any_model_price() -> None:
    """`prices.currency` is the config's one currency even when it lists no model (and the
    shipped USD table is off): a route's default_price, its cost metadata and its spend
    budgets are in it, never in a USD made up for the empty table."""
    from extproc.limits.policy import RateLimit
    from extproc.providers.base import Usage
    from extproc.spend.cost import request_cost

    for models in ([], [{"provider": "anthropic", "model": "claude-x", "input": 3,
                         "output": 15}]):
        cfg = parse({"prices": {"currency": "EUR", "defaults": False, "models": models},
                     "routes": [{"name": "r", "provider": "openai",
                                 "default_price": {"input": 1, "output": 4},
                                 "rate_limits": [{"name": "s", "key": [],
                                                  "spend": [{"limit": 25, "per": "1d"}]}]}]})
        pricing = cfg.routes["r"].pricing
        assert pricing.default is not None and pricing.default.currency == "EUR"
        assert pricing.currency == "EUR"
        (budget,) = [p for p in cfg.routes["r"].policies if isinstance(p, RateLimit)]
        assert budget.currency == "EUR"
        cost = request_cost(pricing, "openai", "gpt-x", Usage(input_tokens=1000,
                                                              output_tokens=1000))
        assert cost.fields() == {"cost": 0.005, "currency": "EUR"}
    assert parse_prices(Checker(), {"currency": "EUR", "defaults": False}).currency == "EUR"
    assert parse_prices(Checker(), {}).currency == "USD"


def _errors(data: dict[str, Any]) -> list[str]:
    base = {"routes": [{"name": "r", "provider": "openai"}]}
    with pytest.raises(ConfigError) as err:
        parse({**base, **data})
    return err.value.errors


def test_config_errors_are_named_by_path() -> None:
    assert _errors({"prices": {"models": [{"provider": "openai", "model": "m", "input": -1,
                                           "output": "x", "since": "soon", "extra": 1}]}}) \
        == ["prices.models[0].extra: unknown key (known keys: cache_write, cached_input, input, "
            "model, output, provider, reasoning, since)",
            "prices.models[0].input: expected a price per million tokens (a number >= 0), "
            "got -1",
            "prices.models[0].output: expected a price per million tokens (a number >= 0), "
            "got 'x'",
            "prices.models[0].since: expected a date like 2025-09-29, got 'soon'"]
    # YAML's unquoted time stamp is a datetime: refused, as comparing it with today's date
    # raised on every request for the model
    assert _errors({"prices": {"models": [{"provider": "openai", "model": "m", "input": 1,
                                           "output": 1, "since": dt.datetime(2025, 1, 1)}]}}) \
        == ["prices.models[0].since: expected a date like 2025-09-29, got a date and time "
            "(2025-01-01 00:00:00)"]
    assert _errors({"prices": {"models": [{"provider": "nope", "model": "m", "input": 1}]}}) == [
        "prices.models[0].provider: unknown provider 'nope' (one of: openai, azure, anthropic, "
        "gemini, vertex)", "prices.models[0].output: is required (a price per million tokens)"]
    assert _errors({"spend": {"team_claim": 3, "other": 1}}) == [
        "spend.other: unknown key (known keys: team_claim)",
        "spend.team_claim: expected a non-empty string, got 3"]
    assert _errors({"routes": [{"name": "r", "provider": "openai",
                                "default_price": {"input": 1, "since": "2020-01-01"}}]}) == [
        "routes[0].default_price.since: unknown key (known keys: cache_write, cached_input, "
        "input, output, reasoning)",
        "routes[0].default_price.output: is required (a price per million tokens)"]


def test_spend_team_claim_reaches_the_llm_policy() -> None:
    cfg = parse({"spend": {"team_claim": "org"}, "routes": [{"name": "r", "provider": "openai"}]})
    llm = next(p for p in cfg.routes["r"].policies if p.name == "LLMTraffic")
    assert llm.team_claim == "org" and llm.pricing is cfg.routes["r"].pricing   # type: ignore[attr-defined]


def test_a_broken_table_file_is_refused_with_the_entry_path(tmp_path: Path) -> None:
    bad = tmp_path / "prices.yaml"
    bad.write_text("models:\n  - {providers: [openai, nope], model: m, input: 1, output: 1}\n"
                   "  - {providers: [openai], model: m, input: 1, outptu: 1}\n")
    with pytest.raises(ValueError) as err:
        read_table(bad)
    assert "models[0].providers: unknown provider 'nope'" in str(err.value)
    assert "models[1].outptu: unknown key" in str(err.value)
    assert "models[1].output: is required" in str(err.value)


# -- scripts/prices_from_litellm.py ---------------------------------------------------------


def test_the_script_turns_per_token_prices_into_entries(tmp_path: Path) -> None:
    src = {
        "sample_spec": {"litellm_provider": "one of https://docs.litellm.ai/docs/providers"},
        "gpt-4o": {"litellm_provider": "openai", "mode": "chat",
                   "input_cost_per_token": 2.5e-06, "cache_read_input_token_cost": 1.25e-06,
                   "output_cost_per_token": 1e-05, "output_cost_per_reasoning_token": 1e-05},
        "gpt-4o-2024-05-13": {"litellm_provider": "openai", "input_cost_per_token": 5e-06,
                              "output_cost_per_token": 1.5e-05},
        "gpt-4o-2024-08-06": {"litellm_provider": "openai", "input_cost_per_token": 2.5e-06,
                              "cache_read_input_token_cost": 1.25e-06,
                              "output_cost_per_token": 1e-05},
        "azure/gpt-4o": {"litellm_provider": "azure", "input_cost_per_token": 2.5e-06,
                         "cache_read_input_token_cost": 1.25e-06,
                         "output_cost_per_token": 1e-05},
        "claude-haiku-4-5": {"litellm_provider": "anthropic", "input_cost_per_token": 1e-06,
                             "cache_read_input_token_cost": 1e-07,
                             "cache_creation_input_token_cost": 1.25e-06,
                             "cache_creation_input_token_cost_above_1hr": 2e-06,
                             "output_cost_per_token": 5e-06},
        "gemini/gemini-2.5-pro": {"litellm_provider": "gemini", "input_cost_per_token": 1.25e-06,
                                  "input_cost_per_token_above_200k_tokens": 2.5e-06,
                                  "output_cost_per_token": 1e-05,
                                  "output_cost_per_reasoning_token": 1.2e-05,
                                  "output_cost_per_token_above_200k_tokens": 1.5e-05},
    }
    path = tmp_path / "litellm.json"
    path.write_text(json.dumps(src))
    script = _script()
    entries, missing = script.build(json.loads(path.read_text()))
    text = script.render(entries, "src", "9.9", "2030-01-02")
    out = tmp_path / "prices.yaml"
    out.write_text(text)
    table = read_table(out)
    by = {(e.provider, e.model): e for e in table.entries}
    assert by[("openai", "gpt-4o")].price.cached_input == D("1.25")
    assert by[("openai", "gpt-4o")].price.reasoning is None     # same as output: left out
    assert by[("azure", "gpt-4o")].price == by[("openai", "gpt-4o")].price
    assert ("openai", "gpt-4o-20*") in by and ("openai", "gpt-4o-2024-08-06") not in by
    dated = by[("openai", "gpt-4o-2024-05-13")]
    assert (dated.price.input, dated.since) == (D(5), dt.date(2024, 5, 13))
    haiku = by[("anthropic", "claude-haiku-4-5")].price
    assert (haiku.cached_input, haiku.cache_write) == (D("0.1"), D("1.25"))
    pro = by[("gemini", "gemini-2.5-pro")].price
    assert (pro.input, pro.output, pro.reasoning) == (D("1.25"), D(10), D(12))
    assert ("gemini", "gemini-2.5-pro-20*") not in by        # Google versions are names
    assert "above 200k prompt tokens: input 2.5, output 15 (not applied" in text
    assert '"src (LiteLLM 9.9), read 2030-01-02"' in text
    assert "anthropic/claude-opus-4-5" in missing


@pytest.mark.skipif(not LITELLM_JSON.exists(), reason="LiteLLM's price file is not here")
def test_the_shipped_table_is_what_the_script_makes_of_litellm_1_106_12() -> None:
    script = _script()
    entries, _ = script.build(json.loads(LITELLM_JSON.read_text()))
    assert script.render(entries, "https://github.com/BerriAI/litellm model_prices_and_"
                         "context_window.json", "1.106.12", "2026-12-03") \
        == DEFAULTS_FILE.read_text()
