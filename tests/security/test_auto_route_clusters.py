"""A `provider: auto` route's provider, and so the key it injects, is the one Envoy routes to
(found by review). The processor picks the provider from the client's path, and Envoy the
cluster from its own route table: matched by path alone they disagree on paths the client
picks (`/v1/models/{m}:generateContent` is Gemini's under an OpenAI `/v1/` prefix,
`/v1/messages/v1/chat/completions` OpenAI's under Anthropic's `/v1/messages`), and one
provider's key went to another's host. Each variant now names its provider in
`x-extproc-provider` and clears the route cache; Envoy routes an auto route by that header,
one route per provider (docs/configuration.md), and a client's own header is removed before
routing. Here the auto route is routed so, with one upstream per provider."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import Gateway, Mock, routes

pytestmark = pytest.mark.envoy

KEYS = {"openai": "sk-openai-operator", "anthropic": "sk-ant-operator",
        "gemini": "AIza-gemini-operator"}


def _config(tmp: Path) -> dict[str, Any]:
    creds = {}
    for p, key in KEYS.items():
        (tmp / f"{p}.key").write_text(key + "\n")
        creds[p] = {"file": str(tmp / f"{p}.key")}
    return {"routes": [{"name": "auto", "provider": "auto", "providers": list(KEYS),
                        "auth": "none", "upstream_credential": creds}]}


def _adjust(doc: dict[str, Any]) -> None:
    """One Envoy route per provider under `/any/`, matched on `x-extproc-provider`, and one
    without the header, which only the processor's pick leaves (a 404 of Envoy's own)."""
    reference = {r["name"]: r for r in routes(doc)}
    per_route = {"envoy.filters.http.ext_proc": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3."
                 "ExtProcPerRoute",
        "overrides": {"grpc_initial_metadata": [{"key": "x-extproc-route", "value": "auto"}]}}}
    mine = []
    for cluster in KEYS:
        r = {**reference[cluster], "name": f"any-{cluster}", "match": {
            "prefix": "/any/", "headers": [{"name": "x-extproc-provider",
                                            "string_match": {"exact": cluster}}]}}
        r["route"] = {k: v for k, v in r["route"].items() if k != "prefix_rewrite"}
        r["route"]["regex_rewrite"] = {"pattern": {"regex": "^/any/"}, "substitution": "/"}
        r["typed_per_filter_config"] = per_route
        mine.append(r)
    mine.append({"name": "any", "match": {"prefix": "/any/"},
                 "direct_response": {"status": 404},
                 "typed_per_filter_config": per_route})
    routes(doc)[:0] = mine


@pytest.fixture(scope="module")
def upstreams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Mock]]:
    tmp = tmp_path_factory.mktemp("auto-upstreams")
    made = {p: Mock(tmp / p) for p in KEYS if (tmp / p).mkdir() or True}
    yield made
    for m in made.values():
        m.stop()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, upstreams: dict[str, Mock]) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("auto-clusters")
    urls = {p: upstreams.get(p, upstreams["openai"]).url
            for p in ("openai", "azure", "anthropic", "gemini", "vertex")}
    gateway = Gateway(tmp, _config(tmp), mock=upstreams["openai"], adjust=_adjust,
                      settings={"upstreams": urls})
    yield gateway
    gateway.close()


def _keys_in(last: dict[str, Any] | None) -> set[str]:
    if last is None:
        return set()
    return {p for p, key in KEYS.items() if any(key in v for v in last["headers"].values())}


def test_each_documented_path_reaches_its_own_provider(gw: Gateway,
                                                       upstreams: dict[str, Mock]) -> None:
    """The split works for the paths as documented (a control)."""
    r = httpx.post(f"{gw.url}/any/v1beta/models/gemini-2.5-flash:generateContent",
                   json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}, timeout=30)
    assert r.status_code == 200, r.text
    assert _keys_in(upstreams["gemini"].last()) == {"gemini"}
    r = httpx.post(f"{gw.url}/any/v1/messages", json={
        "model": "claude-sonnet-4-5", "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
    assert r.status_code == 200, r.text
    assert _keys_in(upstreams["anthropic"].last()) == {"anthropic"}


def test_the_gemini_key_never_reaches_the_openai_upstream(gw: Gateway,
                                                          upstreams: dict[str, Mock]) -> None:
    before = upstreams["openai"].last()
    r = httpx.post(f"{gw.url}/any/v1/models/gemini-2.5-flash:generateContent",
                   json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}, timeout=30)
    last = upstreams["openai"].last()
    leaked = _keys_in(last) - {"openai"} if last != before else set()
    assert not leaked, f"{r.status_code}: the {leaked} key reached the OpenAI cluster " \
                       f"({last and last['path']})"
    assert r.status_code == 200, r.text   # Gemini's, at Gemini's upstream with its key
    assert _keys_in(upstreams["gemini"].last()) == {"gemini"}
    assert upstreams["gemini"].last()["path"].startswith("/v1/models/gemini-2.5-flash")


def test_the_openai_key_never_reaches_the_anthropic_upstream(gw: Gateway,
                                                             upstreams: dict[str, Mock]) -> None:
    before = upstreams["anthropic"].last()
    r = httpx.post(f"{gw.url}/any/v1/messages/v1/chat/completions", json={
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
    last = upstreams["anthropic"].last()
    leaked = _keys_in(last) - {"anthropic"} if last != before else set()
    assert not leaked, f"{r.status_code}: the {leaked} key reached the Anthropic cluster " \
                       f"({last and last['path']})"
    # OpenAI's to the processor, so at OpenAI's upstream with its key (which has no such
    # endpoint: the mock's 404, as OpenAI's would be)
    assert upstreams["openai"].last()["path"] == "/v1/messages/v1/chat/completions", r.text
    assert _keys_in(upstreams["openai"].last()) == {"openai"}


def test_a_clients_own_provider_header_picks_nothing(gw: Gateway,
                                                     upstreams: dict[str, Mock]) -> None:
    """Replaced by the processor's pick. (Its removal before routing, which matters where
    the processor sets nothing, is checked on every rendered config: test_envoy_config.)"""
    before = upstreams["anthropic"].last()
    r = httpx.post(f"{gw.url}/any/v1/chat/completions", json={
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-extproc-provider": "anthropic"}, timeout=30)
    assert r.status_code == 200, r.text
    assert upstreams["anthropic"].last() == before
    assert _keys_in(upstreams["openai"].last()) == {"openai"}
