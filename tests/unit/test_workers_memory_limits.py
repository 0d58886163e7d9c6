"""`serve --workers N` with rate limits or spend budgets in memory: each worker keeps its own
buckets, so every budget is N times looser. Documented, and now said at start (found by
review: nothing said it); with Redis, or one worker, nothing is said."""
from __future__ import annotations

from pathlib import Path

import pytest

from extproc import cli, workers


def test_workers_with_in_memory_budgets_are_warned_about(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FAKE_KEY", "k")
    cfg = tmp_path / "gw.yaml"
    cfg.write_text("""
limits: {backend: memory}
routes:
  - name: openai
    provider: openai
    auth: none
    upstream_credential: {env: FAKE_KEY}
    rate_limits:
      - {name: per-route, key: [route], requests: [{limit: 10, per: 1m}],
         spend: [{limit: 5.00, per: 1d}]}
    default_price: {input: 1, output: 1}
""")
    started: dict[str, int] = {}
    monkeypatch.setattr(workers, "run_workers",
                        lambda opts: started.setdefault("n", opts.workers) and 0)
    assert cli.main(["serve", "--config", str(cfg), "--workers", "4"]) == 0
    assert started["n"] == 4
    said = capfd.readouterr().err.lower()
    assert "route openai are kept in memory, per worker" in said and "4 times" in said, \
        "4 workers each enforce the whole 10/min and 5.00/day budget: nothing said"
    from extproc import loader
    from extproc.server import warn_per_worker_limits
    config = loader.load(str(cfg))
    warn_per_worker_limits(config, 1)                       # one worker: one budget
    from extproc.limits import settings
    monkeypatch.setattr(settings, "_STORES", {})            # (the Redis store stays here)
    monkeypatch.setenv("EXTPROC_LIMITS_REDIS_URL", "redis://127.0.0.1:1/0")
    warn_per_worker_limits(loader.load(str(cfg)), 4)        # Redis: one budget
    assert "per worker" not in capfd.readouterr().err.lower()
