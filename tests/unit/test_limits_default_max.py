"""What a request naming no max output reserves and is sent, by model
(`limits.default_max_tokens_by_model`, `limits.default_max`)."""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import pytest
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb

from extproc import loader
from extproc.exchange import Exchange
from extproc.limits.default_max import DefaultMax
from extproc.schema import ConfigError
from tests.unit.test_exchange import request_body, request_headers

BY_MODEL = {"o*": 16384, "gpt-5*": 32000, "gemini-2.5-pro": 8192}


def test_the_first_glob_a_model_matches_gives_its_bound() -> None:
    pick = DefaultMax(1024, [("gpt-5-mini", 4000), *BY_MODEL.items()])
    assert pick("o3") == 16384
    assert pick("gpt-5-mini") == 4000        # listed first: it wins over gpt-5*
    assert pick("gpt-5-pro") == 32000
    assert pick("gpt-4o") == 1024            # no glob: the default
    assert pick("O3") == 1024                # globs are case-sensitive, as model names
    assert pick(None) == 1024
    assert pick(["o3"]) == 1024              # not a name: the default, no error
    assert pick("o3") == 16384               # (remembered, same answer)


def _config(route: dict[str, Any], name: str, by_model: Any = BY_MODEL) -> Any:
    return loader.parse({"limits": {"default_max_tokens": 1024,
                                    "default_max_tokens_by_model": by_model},
                         "routes": [{"name": name, **route}]})


def _tokens() -> list[dict[str, Any]]:
    return [{"name": "t", "key": [], "tokens": [{"limit": 10**7, "per": "1d"}]}]


async def _send(route: dict[str, Any], path: str, body: dict[str, Any]
                ) -> tuple[int, dict[str, Any]]:
    """One request through the route's policies: what it reserved for its output (the
    reservation less the one-token prompt) and the body sent on."""
    name = f"r{uuid.uuid4().hex[:10]}"
    cfg = _config(route, name)
    ex = Exchange(cfg.routes[name], name, cfg.server.max_request_body_bytes)
    raw = json.dumps(body).encode()
    sent = body
    for msg in (request_headers(path=path, req_mode=1), request_body(raw, True)):
        for reply in await ex.handle(msg):
            if isinstance(reply, bytes):
                reply = pb.ProcessingResponse.FromString(reply)
            assert reply.WhichOneof("response") != "immediate_response", reply
            if reply.WhichOneof("response") == "request_body":
                mutation = reply.request_body.response.body_mutation
                if mutation.HasField("body"):
                    sent = json.loads(mutation.body)
    return int(ex.state["ratelimit"]["reserved_tokens"]) - 1, sent


@pytest.mark.parametrize(("model", "bound"), [("o3", 16384), ("gpt-5-pro", 32000),
                                              ("gpt-4o", 1024)])
async def test_an_openai_request_reserves_and_is_sent_its_models_bound(
        model: str, bound: int) -> None:
    route = {"provider": "openai", "auth": "none", "rate_limits": _tokens()}
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    output, sent = await _send(route, "/v1/chat/completions", body)
    assert output == bound
    field = "max_tokens" if model == "gpt-4o" else "max_completion_tokens"
    assert sent[field] == bound


async def test_a_request_naming_its_max_keeps_it() -> None:
    route = {"provider": "openai", "auth": "none", "rate_limits": _tokens()}
    body = {"model": "o3", "messages": [{"role": "user", "content": "hi"}],
            "max_completion_tokens": 500}
    output, sent = await _send(route, "/v1/chat/completions", body)
    assert (output, sent["max_completion_tokens"]) == (500, 500)


async def test_gemini_takes_the_bound_of_the_model_in_its_path() -> None:
    os.environ.setdefault("EXTPROC_TEST_GEMINI_KEY", "k")
    route = {"provider": "gemini", "auth": "none", "rate_limits": _tokens(),
             "upstream_credential": {"env": "EXTPROC_TEST_GEMINI_KEY"}}
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    output, sent = await _send(route, "/v1beta/models/gemini-2.5-pro:generateContent", body)
    assert output == 8192
    assert sent["generationConfig"]["maxOutputTokens"] == 8192


async def test_the_front_bounds_by_the_backend_model() -> None:
    """On the unified front the glob matches the model the backend serves, not the name
    the client used."""
    os.environ.setdefault("EXTPROC_TEST_FRONT_KEY", "k")
    credential = {"upstream_credential": {"env": "EXTPROC_TEST_FRONT_KEY"}}
    route = {"provider": "openai-compatible", "auth": "none",
             "backends": {"gemini": credential},
             "models": [{"model": "smart", "backend": "gemini",
                         "target": "gemini-2.5-pro"}],
             "rate_limits": _tokens()}
    body = {"model": "smart", "messages": [{"role": "user", "content": "hi"}]}
    output, _ = await _send(route, "/v1/chat/completions", body)
    assert output == 8192


@pytest.mark.parametrize(("by_model", "error"), [
    (["o*"], "expected a mapping"),
    ({"o*": 0}, "at least 1"),
    ({"o*": "16k"}, "whole number"),
    ({"o*": True}, "whole number"),
])
def test_a_bad_mapping_is_named_at_load(by_model: Any, error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        _config({"provider": "openai", "auth": "none", "rate_limits": _tokens()}, "r",
                by_model)
