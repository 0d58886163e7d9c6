"""Configs that loaded without a word but did less than they read (found by the config
review, 2026-12-07; each test failed on the code before its fix): now refused at load, or,
for a guard listed on no route, said in a warning."""

from __future__ import annotations

import json

import pytest

from extproc.guards.policy import Guards
from extproc.guards.reframe import SSEMaskingReframer
from extproc.guards.stream import StreamMasker
from extproc.loader import parse
from extproc.routing import Router
from extproc.schema import ConfigError

KEYS = {"api_keys": [{"id": "ci", "sha256": "0" * 64}]}
#: a DLP rule for bearer tokens as an operator writes it (no upper bound: JWTs vary in size)
JWT_RULE = r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"
#: a 457-character token: longer than the default max_len (256)
TOKEN = "eyJ" + "a" * 150 + "." + "b" * 200 + "." + "c" * 100


def _config(guard: dict, **route) -> dict:
    return {"auth": KEYS, "guards": {"tokens": guard},
            "routes": [{"name": "openai", "provider": "openai", "auth": {"api_keys": True},
                        "guards": ["tokens"], **route}]}


def _openai_stream(text: str, piece: int = 16) -> bytes:
    events = []
    for i in range(0, len(text), piece):
        doc = {"id": "c", "object": "chat.completion.chunk", "model": "m",
               "choices": [{"index": 0, "delta": {"content": text[i:i + piece]},
                            "finish_reason": None}]}
        events.append(b"data: " + json.dumps(doc).encode() + b"\n\n")
    return b"".join(events) + b"data: [DONE]\n\n"


def _client_text(raw: bytes) -> str:
    text = []
    for block in raw.split(b"\n\n"):
        if block.startswith(b"data: ") and block[6:].strip() != b"[DONE]":
            for choice in json.loads(block[6:]).get("choices", ()):   # (not the error)
                text.append(choice["delta"].get("content") or "")
    return "".join(text)


def _reply_guard(cfg) -> Guards:
    return next(p for p in cfg.routes["openai"].policies
                if isinstance(p, Guards) and p.response_guards)


# ---- a custom pattern whose matches outgrow its max_len ---------------------------------------

def test_a_custom_pattern_that_can_match_past_its_max_len_is_refused_at_load() -> None:
    """`max_len` (default 256) is how much streamed text the masker holds back for a custom
    pattern; a pattern with `+`/`*`/`{n,}` can match more, and then a streamed reply goes
    out unmasked. The loader takes it without a word."""
    with pytest.raises(ConfigError, match="max_len"):
        parse(_config({"patterns": {"jwt": {"regex": JWT_RULE}}, "action": "mask"}))


#: the same rule with its repeats bounded, and a max_len that covers its longest match
BOUNDED_RULE = r"eyJ[A-Za-z0-9_-]{1,200}\.[A-Za-z0-9_-]{1,300}\.[A-Za-z0-9_-]{1,200}"


@pytest.mark.parametrize("action", ["mask", "reject"])
def test_a_streamed_reply_with_a_long_match_of_a_bounded_pattern_is_not_passed(
        action) -> None:
    """Written as the loader now asks (repeats bounded, max_len at least the longest
    match), the 457-character token is masked or refused in a stream as in a whole reply."""
    cfg = parse(_config({"patterns": {"jwt": {"regex": BOUNDED_RULE, "max_len": 710}},
                         "action": action}))
    guard = _reply_guard(cfg).response_guards[0]
    text = f"your session token is {TOKEN} - keep it safe"
    assert guard.scanner.mask(text) == "your session token is <JWT> - keep it safe"  # whole
    refused: list[str] = []
    t = SSEMaskingReframer("openai", lambda: [StreamMasker(guard.scanner, action=action)],
                           1 << 20, on_reject=refused.append)
    raw = _openai_stream(text)
    out = b"".join(t.feed(raw[i:i + 64]) for i in range(0, len(raw), 64)) + t.finish()
    assert TOKEN not in _client_text(out), (action, refused, _client_text(out))
    assert (refused == ["jwt"]) if action == "reject" else "<JWT>" in _client_text(out)


# ---- a POST pass-through on a route whose guards read prompts ---------------------------------

@pytest.mark.parametrize("allowed", [
    # prompts past every prompt guard: Assistants thread messages, runs, speech input
    {"path": "/openai/v1/threads/**", "methods": ["POST"]},
    {"path": "/openai/v1/audio/speech", "methods": ["POST"]},
    # replies the provider stored unmasked (store: true), fetched again past the reply
    # guards that masked them on the way out; docs/configuration.md's own example
    # (`/openai/v1/files/**`) serves batch output files the same way
    {"path": "/openai/v1/responses/*"},
    {"path": "/openai/v1/chat/completions/*/messages"},
])
def test_a_pass_through_on_a_guarded_route_is_refused_like_one_on_a_budget_route(
        allowed) -> None:
    """On a route with token budgets a POST pass-through is refused at load (nothing would
    reserve or charge it) unless `unmetered: true`; on a route whose guards read prompts and
    replies a pass-through is read by no guard, and loads without a word."""
    cfg = _config({"detectors": ["email"], "action": "mask"}, passthrough=[allowed])
    with pytest.raises(ConfigError, match="passthrough"):
        parse(cfg)


# ---- a guard defined but on no route ----------------------------------------------------------

def test_a_guard_no_route_lists_is_said(caplog: pytest.LogCaptureFixture) -> None:
    """security.md: "it has no secrets guard. Add one (detectors: [secrets], action: reject)".
    Added under `guards:` and listed on no route, it guards nothing: a warning says so
    (a guard kept for later loads)."""
    cfg = _config({"detectors": ["email"]})
    cfg["guards"]["secrets"] = {"detectors": ["secrets"], "action": "reject"}
    with caplog.at_level("WARNING", logger="extproc.config"):
        parse(cfg)
    said = [r.getMessage() for r in caplog.records if r.name == "extproc.config"]
    assert said == ["guard 'secrets' is listed on no route: it guards nothing"]


# ---- a match that holds for every request -----------------------------------------------------

def test_a_match_of_no_header_is_refused_not_taken_for_match_everything() -> None:
    """`match: {}` is refused ("give at least one of ..."), but `match: {headers: {}}` loads
    and claimed every request, shadowing every later route's match and the default route."""
    cfg = {"auth": KEYS, "routes": [
        {"name": "open", "provider": "openai", "auth": {"api_keys": True},
         "match": {"headers": {}}},
        {"name": "strict", "provider": "openai", "auth": {"api_keys": True},
         "match": {"path_prefix": "/strict/"}}]}
    with pytest.raises(ConfigError, match=r"routes\[0\]\.match\.headers: name at least one"):
        parse(cfg)
    del cfg["routes"][0]      # the same routing without it: the strict route matches
    found = Router(parse(cfg)).resolve(None, None, {":path": "/strict/v1/chat/completions"})
    assert found.name == "strict", found


# ---- secrets from the environment that are blank ----------------------------------------------

def test_a_blank_environment_secret_is_refused_like_a_blank_file(monkeypatch) -> None:
    """`{file: ...}` holding only whitespace is refused ("is empty"); `{env: ...}` holding
    only whitespace loads, and the provider key injected is `Bearer ` (nothing)."""
    monkeypatch.setenv("OPENAI_API_KEY", " \n")
    cfg = {"auth": KEYS, "routes": [{"name": "openai", "provider": "openai",
                                     "auth": {"api_keys": True},
                                     "upstream_credential": {"env": "OPENAI_API_KEY"}}]}
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        parse(cfg)


def test_a_blank_webhook_header_from_the_environment_is_refused(monkeypatch) -> None:
    monkeypatch.setenv("DLP_API_KEY", "")
    cfg = _config({"webhook": {"url": "https://dlp.internal/check",
                               "headers": {"x-api-key": {"env": "DLP_API_KEY"}}}})
    with pytest.raises(ConfigError, match="DLP_API_KEY"):
        parse(cfg)
