"""The request-side Guards policy and the guards config (extproc.guards.policy/settings)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from extproc import loader
from extproc.exchange import Exchange
from extproc.guards.policy import Guards
from extproc.policy import Reject
from extproc.schema import ConfigError


def build(guards: dict[str, Any], names: list[str], provider: str = "openai") -> Guards:
    cfg = loader.parse({"guards": guards, "routes": [
        {"name": "r", "provider": provider, "guards": names}]})
    policy = next(p for p in cfg.routes["r"].policies if isinstance(p, Guards))
    return policy


def exchange() -> Exchange:
    ex = Exchange(route=None)
    ex.request_headers = {":path": "/v1/chat/completions"}
    return ex


def chat(*messages: tuple[str, str]) -> bytes:
    return json.dumps({"model": "m", "messages": [{"role": r, "content": c}
                                                   for r, c in messages]}).encode()


async def test_mask_rewrites_only_the_configured_roles() -> None:
    g = build({"pii": {"detectors": ["email"], "roles": ["user"]}}, ["pii"])
    ex = exchange()
    out = await g.on_request_body(ex, chat(("system", "ops@example.com"),
                                           ("user", "me@example.com, hi")))
    assert out is not None
    sent = json.loads(out)["messages"]
    assert sent[0]["content"] == "ops@example.com"           # system not checked
    assert sent[1]["content"] == "<EMAIL>, hi"
    assert ex.metadata["guard_request"] == "pii:masked:email"


async def test_nothing_found_keeps_the_body_untouched() -> None:
    g = build({"pii": {"detectors": ["email"]}}, ["pii"])
    assert await g.on_request_body(exchange(), chat(("user", "no address here"))) is None


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'"text"'])
async def test_a_body_the_guard_cannot_read_is_refused(body: bytes) -> None:
    """Fail closed: a body the guard cannot read is never passed on unchecked (the exchange
    refuses it earlier with the reason; the guard itself refuses too, whoever calls it)."""
    g = build({"pii": {"detectors": ["email"]}}, ["pii"])
    with pytest.raises(Reject) as err:
        await g.on_request_body(exchange(), body)
    assert err.value.status == 400


async def test_reject_runs_before_mask_and_never_echoes() -> None:
    g = build({"pii": {"detectors": ["email"]},
               "keys": {"detectors": ["secrets"], "action": "reject"}}, ["pii", "keys"])
    ex = exchange()
    with pytest.raises(Reject) as r:
        await g.on_request_body(ex, chat(("user", "me@example.com AKIAIOSFODNN7EXAMPLE")))
    assert r.value.status == 400
    assert r.value.message == ("request blocked by guard 'keys': the prompt contains aws "
                               "access key")
    assert "AKIA" not in r.value.message
    assert ex.metadata["guard_request"] == "keys:rejected:aws_access_key"
    assert g.stats == {"rejected": 1, "masked": 0, "response_rejected": 0, "webhook_calls": 0,
                       "webhook_errors": 0, "webhook_failed_open": 0}


async def test_deny_words_and_custom_patterns() -> None:
    g = build({"c": {"patterns": {"ticket": {"regex": "TCK-[0-9]{4}", "placeholder": "<T>"}},
                     "deny": {"words": ["Blue Falcon"]}}}, ["c"])
    out = await g.on_request_body(exchange(), chat(("user", "TCK-1234 about blue falcon")))
    assert out is not None
    assert json.loads(out)["messages"][0]["content"] == "<T> about <REDACTED>"


def errors(doc: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as e:
        loader.parse(doc)
    return "\n".join(e.value.errors)


def test_config_errors_name_their_path() -> None:
    text = errors({"guards": {
        "a": {"detectors": ["emial"], "action": "block", "roles": ["robot"]},
        "b": {"patterns": {"p": {"regex": "(a)\\1"}}},
        "c": {"deny": {"words": []}},
        "d": {}},
        "routes": [{"name": "r", "provider": "openai", "guards": ["a", "zzz"]}]})
    for expected in ("guards.a.detectors[0]: unknown detector 'emial'",
                     "guards.a.action: unknown action 'block' (one of: mask, reject)",
                     "guards.a.roles[0]: unknown role 'robot'",
                     "guards.b.patterns.p.regex: ",
                     "guards.c.deny.words: expected a non-empty list",
                     "guards.d: detects nothing",
                     "routes[0].guards[1]: unknown guard 'zzz'"):
        assert expected in text, text


def test_webhook_config_errors_name_their_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_DLP_KEY", raising=False)
    text = errors({"guards": {
        "w": {"webhook": {"url": "ftp://x", "timeout_ms": 9000, "fail": "maybe",
                          "headers": {"x-api-key": {"env": "NO_SUCH_DLP_KEY"}, "x-n": 3}},
              "detectors": ["email"]},
        "v": {"webhook": {"timeout_ms": 0, "segment_chars": 2}}},
        "routes": [{"name": "r", "provider": "openai", "guards": ["w", "v"]}]})
    for expected in ("guards.w.webhook.url: expected an http:// or https:// URL",
                     "guards.w.webhook.timeout_ms: at most 4000",
                     "guards.w.webhook.fail: unknown fail mode 'maybe'",
                     "guards.w.webhook.headers.x-api-key.env: environment variable "
                     "NO_SUCH_DLP_KEY is not set",
                     "guards.w.webhook.headers.x-n: expected a string or {env: NAME}",
                     "guards.w.detectors: a webhook guard decides itself",
                     "guards.v.webhook.url: ",
                     "guards.v.webhook.timeout_ms: ",
                     "guards.v.webhook.segment_chars: "):
        assert expected in text, text


def test_a_routes_webhooks_fit_one_message_together() -> None:
    """Found by review: a route's webhook guards are called one after another inside one
    ext_proc message, so two fail-open guards of 3 s each outlasted Envoy's 5 s message
    timeout, and the client got Envoy's 504 instead of the pass failing open promised."""
    def hook(ms: int, apply_to: list[str]) -> dict[str, Any]:
        return {"webhook": {"url": "http://dlp:9100/check", "timeout_ms": ms, "fail": "open"},
                "apply_to": apply_to}

    text = errors({"guards": {"a": hook(3000, ["request"]), "b": hook(3000, ["request"]),
                              "c": hook(2500, ["response"])},
                   "routes": [{"name": "r", "provider": "openai", "guards": ["a", "b", "c"]}]})
    assert "routes[0].guards: the request webhook guards ('a', 'b') may wait 6000 ms" in text
    assert "response webhook" not in text          # one alone may take its 4000
    cfg = loader.parse({"guards": {"a": hook(2000, ["request", "response"]),
                                   "b": hook(2000, ["request"]), "c": hook(4000, ["request"])},
                        "routes": [{"name": "r", "provider": "openai", "guards": ["a", "b"]},
                                   {"name": "s", "provider": "openai", "guards": ["c"]}]})
    assert set(cfg.routes) == {"r", "s"}


def test_a_webhook_guard_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLP_KEY", "s3cret")
    cfg = loader.parse({"guards": {"w": {"webhook": {
        "url": "http://dlp:9100/check", "fail": "open",
        "headers": {"X-Api-Key": {"env": "DLP_KEY"}, "x-team": "ml"}}, "apply_to": ["request"]}},
        "routes": [{"name": "r", "provider": "openai", "guards": ["w"]}]})
    request_side = cfg.routes["r"].policies[0]
    spec = request_side.request_webhooks[0].webhook
    assert (spec.url, spec.timeout_s, spec.fail_open, spec.segment_chars) == (
        "http://dlp:9100/check", 0.3, True, 200)
    assert spec.headers == (("x-api-key", "s3cret"), ("x-team", "ml"))
    assert [p.name for p in cfg.routes["r"].policies] == ["Guards", "LLMTraffic"]


def test_guards_run_right_after_auth() -> None:
    cfg = loader.parse({"guards": {"g": {"detectors": ["email"]}}, "routes": [
        {"name": "r", "provider": "openai", "guards": ["g"],
         "rate_limits": [{"name": "l", "key": [], "requests": [{"limit": 1, "per": "1m"}]}]}]})
    assert [p.name for p in cfg.routes["r"].policies] == ["Guards", "LLMTraffic", "Guards",
                                                         "RateLimit"]


async def test_a_lone_surrogate_in_a_masked_prompt_stays_escaped() -> None:
    g = build({"pii": {"detectors": ["email"]}}, ["pii"])
    out = await g.on_request_body(exchange(), chat(("user", "\ud800 mail a@b.co")))
    assert out is not None
    out.decode()                                   # valid UTF-8
    assert json.loads(out)["messages"][0]["content"] == "\ud800 mail <EMAIL>"
