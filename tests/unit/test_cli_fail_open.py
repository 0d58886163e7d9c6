"""`render-envoy --fail-open` is refused where a route enforces policies (a fail-open Envoy
sends a request on unprocessed when the processor is down or misses message_timeout, and
one whose headers were answered goes out with the injected key and an unread body). The
check read `route.policies`, which a `provider: auto` route leaves empty (its policies are
in its `variants`): an auto route with auth, guards, limits and injected keys rendered
`failure_mode_allow: true` without a word (found by review)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from extproc import cli

ROUTE = {"auth": {"api_keys": True}, "guards": ["pii"],
         "rate_limits": [{"name": "per-user", "key": ["subject"],
                          "requests": [{"limit": 5, "per": "1m"}]}]}
CONFIG = {
    "auth": {"api_keys": [{"id": "k1", "subject": "alice", "sha256":
                           "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"}]},
    "guards": {"pii": {"detectors": ["email", "card"], "action": "reject"}},
}


@pytest.mark.parametrize("provider", ["openai", "auto"])
def test_fail_open_is_refused_on_an_enforcing_route_whatever_its_provider(
        provider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FAKE_KEY", "sk-operator")
    route = {"name": "llm", "provider": provider, **ROUTE}
    if provider == "auto":
        route["providers"] = ["openai", "anthropic"]
        route["upstream_credential"] = {"openai": {"env": "FAKE_KEY"},
                                        "anthropic": {"env": "FAKE_KEY"}}
    else:
        route["upstream_credential"] = {"env": "FAKE_KEY"}
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "routes": [route]}))
    out = tmp_path / "envoy.yaml"
    with pytest.raises(SystemExit) as refused:
        cli.main(["render-envoy", "--config", str(path), "--fail-open", "-o", str(out)])
    assert "route llm would skip authentication, guards and limits" in str(refused.value)
    assert not out.exists()
