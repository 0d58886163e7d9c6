"""The request-match fallback through an Envoy that tells the processor nothing about the route
(tests/mesh/kgateway.yaml, shaped like kgateway's: no initial metadata, no attributes, no
metadata forwarding). The extproc routes declare `match` (path prefix, host, headers) and one
says `provider: auto`; each request lands on the route whose match holds first and on the
provider its path names (the route's own credential reaches the provider, the server logs the
route and provider, errors come in that provider's format), and a request no route claims gets
the provider-neutral 404, or 403 with `routing: {unmatched_status: 403}`, and never reaches a
provider."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from extproc.errors import error_kind
from tests.harness import Gateway, Mock
from tests.mesh.common import (
    EMAIL,
    Call,
    call,
    reference_config,
    render,
    rid,
    route_key,
    send,
    token,
    upstream,
)
from tests.mesh.suite import Shape, error_kind_of

pytestmark = pytest.mark.envoy

HOST = "llm.example.com"
SHAPE = Shape(prefixes={}, envoy_routes={}, extproc_routes={}, host=HOST,
              agent_key="user_agent", request_id_key="request_id")
AUTO_PROVIDERS = ("openai", "anthropic", "gemini")

MATCHES = {
    "openai": {"match": {"path_prefix": "/openai/"}},
    "azure": {"match": {"path_prefix": "/azure/", "host": HOST}},
    "anthropic": {"match": {"path_prefix": "/anthropic/", "headers": {"x-team": "research"}}},
    "gemini": {"match": {"path_prefix": "/gemini/", "host": "*.example.com"}},
    "vertex": {"match": {"path_prefix": "/vertex/"}},
}


def auto_key(provider: str) -> str:
    return route_key(f"auto-{provider}")


def config(key_dir: Path, unmatched_status: int | None = None) -> dict[str, Any]:
    """The reference routes, each claimed by its `match`, and a route `auto` on /any/ that
    serves OpenAI, Anthropic and Gemini as its path says, with the reference policies."""
    doc = reference_config(key_dir, MATCHES)
    auto = copy.deepcopy(next(r for r in doc["routes"] if r["name"] == "openai"))
    credentials = {}
    for p in AUTO_PROVIDERS:
        key = key_dir / f"auto-{p}.key"
        key.write_text(auto_key(p) + "\n")
        credentials[p] = {"file": str(key)}
    auto.pop("passthrough", None)
    auto.update({"name": "auto", "provider": "auto", "providers": list(AUTO_PROVIDERS),
                 "match": {"path_prefix": "/any/"}, "upstream_credential": credentials})
    doc["routes"].append(auto)
    if unmatched_status is not None:
        doc["routing"] = {"unmatched_status": unmatched_status}
    return doc


def start(tmp_path_factory: pytest.TempPathFactory, mock: Mock, name: str,
          unmatched_status: int | None = None) -> Gateway:
    log_dir = tmp_path_factory.mktemp(name)
    return Gateway(log_dir, config(log_dir / "keys", unmatched_status), mock=mock,
                   envoy_doc=lambda ports: render("kgateway.yaml", ports))


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    gateway = start(tmp_path_factory, mock, "request-match")
    yield gateway
    gateway.close()


@pytest.fixture(scope="module")
def gw403(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    gateway = start(tmp_path_factory, mock, "request-match-403", unmatched_status=403)
    yield gateway
    gateway.close()


def post(gw: Gateway, prefix: str, c: Call, *, host: str = HOST, credential: str | None = "",
         **kw: Any) -> Any:
    return send(f"{gw.url}{prefix}", c, host=host,
                credential=token() if credential == "" else credential, **kw)


def assert_landed(gw: Gateway, marker: str, c: Call, route: str, key: str) -> None:
    sent = upstream(gw)
    assert sent["headers"][c.upstream_key_header] == c.upstream_key_format.format(key)
    line = SHAPE.server_log(gw, marker)
    assert (line["route"], line["provider"]) == (route, c.provider)


def assert_refused(gw: Gateway, prefix: str, c: Call, status: int, **kw: Any) -> None:
    marker = rid()
    c = call(c.provider, marker)
    r = post(gw, prefix, c, **kw)
    assert r.status_code == status, r.text
    assert r.json() == {"error": {"message": r.json()["error"]["message"],
                                  "type": "gateway_error", "code": status}}
    last = gw.mock.last()
    assert last is None or marker not in last["body"]


@pytest.mark.parametrize(("prefix", "provider", "extra"), [
    ("/openai", "openai", {}),
    ("/azure", "azure", {}),
    ("/anthropic", "anthropic", {"x-team": "research"}),
    ("/gemini", "gemini", {}),
    ("/vertex", "vertex", {}),
])
def test_each_provider_route_is_claimed_by_its_match(gw: Gateway, prefix: str, provider: str,
                                                     extra: dict[str, str]) -> None:
    marker = rid()
    c = call(provider, f"mail {EMAIL}")
    r = post(gw, prefix, c, request_id=marker, headers={"x-mock-reply": "matched", **extra})
    assert r.status_code == 200, r.text
    assert c.reply_text(r.json()) == "matched"
    assert c.sent_text(json.loads(upstream(gw)["body"])) == "mail <EMAIL>"   # its guard ran
    assert_landed(gw, marker, c, provider, route_key(provider))


@pytest.mark.parametrize("provider", AUTO_PROVIDERS)
def test_provider_auto_recognises_the_provider_from_the_path(gw: Gateway,
                                                             provider: str) -> None:
    marker = rid()
    c = call(provider)
    r = post(gw, "/any", c, request_id=marker, headers={"x-mock-reply": "auto"})
    assert r.status_code == 200, r.text
    assert c.reply_text(r.json()) == "auto"
    assert_landed(gw, marker, c, "auto", auto_key(provider))
    # and its refusals come in that provider's format
    r = post(gw, "/any", c, credential=None)
    assert r.status_code == 401, r.text
    assert error_kind_of(provider, r.json()) == error_kind(provider, 401)


def test_provider_auto_serves_only_the_providers_it_names(gw: Gateway) -> None:
    marker = rid()
    r = post(gw, "/any", call("vertex", marker))
    assert 400 <= r.status_code < 500, r.text
    last = gw.mock.last()
    assert last is None or marker not in last["body"]


def test_a_request_whose_host_no_route_accepts_is_refused(gw: Gateway) -> None:
    """/azure/ is azure's only on llm.example.com, and /gemini/ only on *.example.com."""
    assert_refused(gw, "/azure", call("azure"), 404, host="other.test")
    assert_refused(gw, "/gemini", call("gemini"), 404, host="example.com")


def test_a_request_without_the_routes_header_is_refused(gw: Gateway) -> None:
    assert_refused(gw, "/anthropic", call("anthropic"), 404)
    assert_refused(gw, "/anthropic", call("anthropic"), 404, headers={"x-team": "other"})


def test_a_request_no_route_claims_gets_the_provider_neutral_404(gw: Gateway) -> None:
    assert_refused(gw, "/nothing", call("openai"), 404)
    assert_refused(gw, "/nothing", call("anthropic"), 404)


def test_unmatched_status_403(gw403: Gateway) -> None:
    assert_refused(gw403, "/nothing", call("openai"), 403)
    marker = rid()
    c = call("openai")
    r = post(gw403, "/openai", c, request_id=marker)
    assert r.status_code == 200, r.text
    assert_landed(gw403, marker, c, "openai", route_key("openai"))
