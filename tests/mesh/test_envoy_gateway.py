"""Envoy Gateway v1.9's Envoy config for our manifests (tests/mesh/envoy_gateway.yaml: the
ext_proc filter disabled on the HCM and enabled per route by an empty FilterConfig, no initial
metadata, the route identity from the `xds.route_name` and `xds.route_metadata` attributes,
EG's 10 s gRPC timeout, the listener buffer raised by ClientTrafficPolicy), run by the real
Envoy against the real server and the mock provider.

Route identity comes from both sources EG can give: openai, anthropic and gemini name their
HTTPRoutes with `envoy_route_names` patterns; azure and vertex are named by the HTTPRoute
annotation `gateway.envoyproxy.io/extproc-route`, which EG hands over in the route metadata.
Every provider route reaches its own extproc route with auth, limits, the PII guard and usage
in the access log (tests/mesh/suite.py); an HTTPRoute no extproc route claims, or whose
annotation names no configured route, is refused and never forwarded; so is another
namespace's HTTPRoute annotated with our route's name (`routing.route_owners`)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.harness import Gateway, Mock
from tests.mesh.common import (
    EMAIL,
    PROVIDERS,
    call,
    reference_config,
    render,
    rid,
    send,
    token,
    upstream,
)
from tests.mesh.suite import ProviderRoutes, Shape

pytestmark = pytest.mark.envoy

HOST = "llm.example.com"
SHAPE = Shape(prefixes={p: f"/{p}" for p in PROVIDERS},
              envoy_routes={p: f"httproute/llm-gateway/{p}/rule/0/match/0/llm_example_com"
                            for p in PROVIDERS},
              extproc_routes={p: p for p in PROVIDERS},
              host=HOST, agent_key="user-agent", request_id_key="x-request-id")

#: openai, anthropic and gemini by the route name EG gives their HTTPRoute; azure and vertex
#: by their annotation (no pattern matches them)
IDENTITY = {
    "openai": {"envoy_route_names": ["httproute/llm-gateway/openai/**"]},
    "anthropic": {"envoy_route_names": ["httproute/llm-gateway/anthropic/rule/*/match/*/*"]},
    "gemini": {"envoy_route_names": ["httproute/llm-gateway/gemini/**"]},
}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    log_dir = tmp_path_factory.mktemp("envoy-gateway")
    config = reference_config(log_dir / "keys", IDENTITY)
    # as deploy/kubernetes/overlays/envoy-gateway/extproc.yaml: our namespace's HTTPRoutes only
    config["routing"] = {**config.get("routing", {}), "route_owners": [
        {"kind": "HTTPRoute", "namespace": "llm-gateway"}]}
    gateway = Gateway(log_dir, config, mock=mock,
                      envoy_doc=lambda ports: render("envoy_gateway.yaml", ports))
    yield gateway
    gateway.close()


@pytest.fixture
def shape() -> Shape:
    return SHAPE


def refused_unforwarded(gw: Gateway, prefix: str) -> httpx.Response:
    marker = rid()
    r = send(f"{gw.url}{prefix}", call("openai", marker), credential=token(), host=HOST)
    last = gw.mock.last()
    assert last is None or marker not in last["body"]
    return r


class TestEnvoyGateway(ProviderRoutes):
    def test_an_httproute_no_extproc_route_claims_is_refused(self, gw: Gateway) -> None:
        r = refused_unforwarded(gw, "/unclaimed")
        assert r.status_code == 404, r.text
        assert r.json() == {"error": {"message": "no gateway route serves this request",
                                      "type": "gateway_error", "code": 404}}

    def test_an_annotation_naming_no_configured_route_is_refused(self, gw: Gateway) -> None:
        r = refused_unforwarded(gw, "/stale")
        assert r.status_code == 404, r.text
        assert r.json()["error"]["type"] == "gateway_error"
        assert "'retired'" in r.json()["error"]["message"]    # the annotation was read

    def test_another_namespaces_httproute_annotated_like_ours_is_refused(
            self, gw: Gateway) -> None:
        """Found by the mesh review: an HTTPRoute of namespace `tenant` annotated
        extproc-route: openai (on the tenant's own Gateway, calling our Service) got our
        openai route, and the key was injected toward the tenant's server. The annotation of
        a namespace routing.route_owners does not name is never read: refused, unforwarded."""
        r = refused_unforwarded(gw, "/tenant")
        assert r.status_code == 404, r.text
        assert r.json()["error"]["type"] == "gateway_error"

    def test_a_prompt_past_egs_default_32KiB_buffer_is_read_and_guarded(
            self, gw: Gateway) -> None:
        """ClientTrafficPolicy's bufferLimit is what lets a Buffered prompt past 32 KiB
        through; the whole of it is read (the PII at its end is masked)."""
        filler = "lorem ipsum " * 4000     # 47 KiB: past 32 KiB, within the token budget
        c = call("openai", f"{filler}mail {EMAIL}")
        r = send(f"{gw.url}/openai", c, credential=token(), host=HOST)
        assert r.status_code == 200, r.text[:500]
        sent = c.sent_text(json.loads(upstream(gw)["body"]))
        assert sent == f"{filler}mail <EMAIL>"

    def test_a_stream_longer_than_egs_10s_grpc_timeout_survives(self, gw: Gateway) -> None:
        """EG sets grpc_service.timeout 10s on the filter; a paced stream of ~12 s keeps its
        ext_proc stream, ends cleanly and reports its usage."""
        words = " ".join(f"w{i}" for i in range(12))
        c = call("openai", "a slow one", stream=True)
        direct = httpx.post(f"{gw.mock.url}{c.path}", json=c.body, timeout=30,
                            headers={"x-mock-reply": words})
        frames = direct.content.count(b"\n\n")
        delay_ms = math.ceil(12000 / max(frames - 1, 1))
        request_id = rid()
        started = time.monotonic()
        r = send(f"{gw.url}/openai", c, credential=token(), host=HOST, request_id=request_id,
                 headers={"x-mock-reply": words, "x-mock-delay-ms": str(delay_ms)},
                 timeout=60)
        elapsed = time.monotonic() - started
        assert r.status_code == 200, r.text
        assert elapsed > 10.5, elapsed
        data = [line[6:] for line in r.text.split("\n") if line.startswith("data: ")]
        assert data[-1] == "[DONE]"
        text = "".join(json.loads(d)["choices"][0]["delta"].get("content") or ""
                       for d in data[:-1])
        assert text == words
        entry = SHAPE.envoy_log(gw, request_id)
        assert entry["response_code"] == 200 and entry["response_flags"] == "-", entry
        assert entry["extproc"]["output_tokens"] > 0
