"""`GET /spend` reads the stores of the running config, not every store the process made: a
reload that is refused still made its Redis store while its routes were parsed, and `/spend`
of the running in-memory config then answered 503 for good, naming a Redis it never used
(found by review)."""
from __future__ import annotations

import asyncio

import pytest

from extproc import loader
from extproc.limits import settings
from extproc.limits.store import MemoryStore
from extproc.schema import ConfigError

ROUTE = {"name": "openai", "provider": "openai", "auth": "none",
         "rate_limits": [{"name": "r", "key": ["route"],
                          "spend": [{"limit": 5, "per": "1d"}]}],
         "default_price": {"input": 1, "output": 1}}


def test_a_refused_reload_leaves_no_store_that_spend_reads(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "_STORES", {})
    running = loader.parse({"limits": {"backend": "memory"}, "routes": [ROUTE]})
    assert asyncio.run(settings.spend_budgets(running.routes))["store"] == "memory"
    with pytest.raises(ConfigError):   # refused: a typo elsewhere in the file
        loader.parse({"limits": {"backend": "redis", "redis_url": "redis://127.0.0.1:1/0",
                                 "timeout_ms": 50},
                      "routes": [ROUTE], "server": {"grace_period_z": 1}})
    assert any(not isinstance(s, MemoryStore) for s in settings._STORES.values())
    found = asyncio.run(settings.spend_budgets(running.routes))   # no 503: memory only
    assert found == {"store": "memory", "budgets": []}
    assert asyncio.run(settings.spend_budgets({})) == {"store": "memory", "budgets": []}
