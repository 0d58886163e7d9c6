"""The checks every mesh shape must pass on each provider route, through the real Envoy: the
request reaches its own extproc route (the route's own credential reaches the provider, the
server logs that route, Envoy logs its own route), a request without a credential gets a 401
in the provider's format, the per-subject budget ends in a 429, a PII value is masked in the
prompt and in the reply, and the usage reaches Envoy's access log.

A test module subclasses `ProviderRoutes` as `Test<Shape>` and gives the fixtures `gw`
(a Gateway on the shape) and `shape` (a `Shape`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from extproc.errors import error_kind
from tests.harness import Gateway
from tests.mesh.common import (
    EMAIL,
    PROVIDERS,
    Call,
    call,
    rid,
    route_key,
    send,
    server_access_log,
    token,
    upstream,
)


@dataclass(frozen=True)
class Shape:
    """How to reach a shape's provider routes and read its access log."""

    prefixes: dict[str, str]       # provider -> the path prefix of its Envoy route
    envoy_routes: dict[str, str]   # provider -> the Envoy route's name (%ROUTE_NAME%)
    extproc_routes: dict[str, str]  # provider -> the extproc route that must handle it
    host: str | None = None        # the Host the shape's virtual host answers
    agent_key: str = "user_agent"  # the access-log fields: the user agent (our marker)
    request_id_key: str = "request_id"  # and the x-request-id Envoy made

    def post(self, gw: Gateway, provider: str, c: Call, **kw: Any) -> httpx.Response:
        return send(f"{gw.url}{self.prefixes[provider]}", c, host=self.host, **kw)

    def envoy_log(self, gw: Gateway, marker: str) -> dict[str, Any]:
        """Envoy's access-log entry of the request sent with this marker."""
        return gw.access_log(marker, key=self.agent_key)

    def server_log(self, gw: Gateway, marker: str) -> dict[str, Any]:
        """The extproc server's access-log line of that request."""
        return server_access_log(gw, self.envoy_log(gw, marker)[self.request_id_key])


def error_kind_of(provider: str, data: dict[str, Any]) -> str:
    """The error's type (status for Google) in the provider's own error format."""
    if provider == "anthropic":
        assert data["type"] == "error"
        return data["error"]["type"]
    if provider in ("gemini", "vertex"):
        return data["error"]["status"]
    return data["error"]["type"]


class ProviderRoutes:
    @pytest.mark.parametrize("provider", PROVIDERS)
    def test_the_request_reaches_its_own_extproc_route(self, gw: Gateway, shape: Shape,
                                                       provider: str) -> None:
        request_id = rid()
        c = call(provider)
        r = shape.post(gw, provider, c, credential=token(), request_id=request_id,
                       headers={"x-mock-reply": "routed"})
        assert r.status_code == 200, r.text
        assert c.reply_text(r.json()) == "routed"
        route = shape.extproc_routes[provider]
        sent = upstream(gw)
        assert sent["headers"][c.upstream_key_header] == \
            c.upstream_key_format.format(route_key(route))
        assert "mock-key-of-route" not in json.dumps(
            {k: v for k, v in sent["headers"].items() if k != c.upstream_key_header})
        assert shape.server_log(gw, request_id)["route"] == route
        assert shape.envoy_log(gw, request_id)["route_name"] == shape.envoy_routes[provider]

    @pytest.mark.parametrize("provider", PROVIDERS)
    def test_no_credential_is_a_401_in_the_providers_format(self, gw: Gateway, shape: Shape,
                                                           provider: str) -> None:
        marker = rid()
        r = shape.post(gw, provider, call(provider, marker), credential=None)
        assert r.status_code == 401, r.text
        assert error_kind_of(provider, r.json()) == error_kind(provider, 401)
        last = gw.mock.last()
        assert last is None or marker not in last["body"]

    @pytest.mark.parametrize("provider", PROVIDERS)
    def test_the_budget_ends_in_a_429(self, gw: Gateway, shape: Shape, provider: str) -> None:
        credential = token()                  # a subject of its own: 10 requests a minute
        for i in range(10):
            r = shape.post(gw, provider, call(provider), credential=credential)
            assert r.status_code == 200, (i, r.text)
        r = shape.post(gw, provider, call(provider), credential=credential)
        assert r.status_code == 429, r.text
        assert error_kind_of(provider, r.json()) == error_kind(provider, 429)
        # another subject on the same route still has its own budget
        r = shape.post(gw, provider, call(provider), credential=token())
        assert r.status_code == 200, r.text

    @pytest.mark.parametrize("provider", PROVIDERS)
    def test_pii_is_masked_in_prompt_and_reply(self, gw: Gateway, shape: Shape,
                                               provider: str) -> None:
        c = call(provider, f"please mail {EMAIL} today")
        r = shape.post(gw, provider, c, credential=token(),
                       headers={"x-mock-reply": f"I wrote to {EMAIL} for you."})
        assert r.status_code == 200, r.text
        assert c.sent_text(json.loads(upstream(gw)["body"])) == "please mail <EMAIL> today"
        assert c.reply_text(r.json()) == "I wrote to <EMAIL> for you."
        assert EMAIL not in r.text

    @pytest.mark.parametrize("provider", PROVIDERS)
    def test_streamed_usage_reaches_the_access_log(self, gw: Gateway, shape: Shape,
                                                   provider: str) -> None:
        request_id, subject = rid(), rid()
        c = call(provider, "count my tokens", stream=True)
        r = shape.post(gw, provider, c, credential=token(subject), request_id=request_id,
                       headers={"x-mock-reply": "five words of reply here",
                                "x-mock-chunk-bytes": "7"})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/event-stream")
        md = shape.envoy_log(gw, request_id)["extproc"]
        assert md["provider"] == provider and md["stream"] is True
        assert md["input_tokens"] > 0 and md["output_tokens"] > 0
        assert md["subject"] == f"jwt:local-dev:{subject}"
