"""Istio's ingress gateway with our EnvoyFilter (tests/mesh/istio.yaml: the
`outbound|50051||extproc.llm-gateway.svc.cluster.local` cluster, the filter inserted before the
router and on for every route, each VirtualService route's HTTP_ROUTE MERGE adding the
`x-extproc-route` initial metadata), run by the real Envoy against the real server and the
mock provider: every provider route reaches its own extproc route with auth, limits, the PII
guard and usage in the access log (tests/mesh/suite.py); a route of another namespace's
VirtualService that the per-route patch also matched (by its name) is refused."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.harness import Gateway, Mock
from tests.mesh.common import PROVIDERS, call, reference_config, render, rid, send, token
from tests.mesh.suite import ProviderRoutes, Shape

pytestmark = pytest.mark.envoy

SHAPE = Shape(prefixes={p: f"/{p}" for p in PROVIDERS},
              envoy_routes={p: f"llm-{p}" for p in PROVIDERS},
              extproc_routes={p: p for p in PROVIDERS},
              host="llm.example.com")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    log_dir = tmp_path_factory.mktemp("istio")
    config = reference_config(log_dir / "keys")
    # as deploy/kubernetes/overlays/istio/extproc.yaml: only our VirtualService's routes
    config["routing"] = {**config.get("routing", {}), "route_owners": [
        {"kind": "VirtualService", "namespace": "llm-gateway", "name": "llm"}]}
    gateway = Gateway(log_dir, config, mock=mock,
                      envoy_doc=lambda ports: render("istio.yaml", ports))
    yield gateway
    gateway.close()


@pytest.fixture
def shape() -> Shape:
    return SHAPE


class TestIstio(ProviderRoutes):
    def test_a_path_no_virtualservice_route_names_never_reaches_a_provider(
            self, gw: Gateway) -> None:
        r = httpx.post(f"{gw.url}/other/v1/chat/completions", timeout=30,
                       headers={"host": "llm.example.com",
                                "authorization": f"Bearer {token()}"},
                       json={"model": "m", "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 404

    def test_a_route_no_patch_names_is_refused_by_the_server_not_let_through(
            self, gw: Gateway) -> None:
        """A VirtualService route added without its EnvoyFilter patch reaches the server with
        no route name: the server refuses it (neutral 404), the provider never sees it."""
        before = gw.mock.last()
        r = httpx.post(f"{gw.url}/unlisted/v1/chat/completions", timeout=30,
                       headers={"host": "llm.example.com",
                                "authorization": f"Bearer {token()}"},
                       json={"model": "m", "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 404
        assert r.json() == {"error": {"message": "no gateway route serves this request",
                                      "type": "gateway_error", "code": 404}}
        assert gw.mock.last() == before

    def test_another_namespaces_route_named_like_ours_gets_neither_route_nor_key(
            self, gw: Gateway) -> None:
        """Found by the mesh review: a VirtualService of namespace `tenant`, bound to our
        ingress pods through a Gateway of its own, names a route llm-openai to its collector.
        The EnvoyFilter's per-route patch (by route name) gives it x-extproc-route: openai;
        the server sees from Istio's route metadata that the route is not our
        VirtualService's and refuses it: no key is injected, the collector never sees it."""
        marker = rid()
        r = send(f"{gw.url}/openai", call("openai", marker), credential=token(),
                 host="steal.example.com", headers={"x-mock-reply": "stolen"})
        assert r.status_code == 404, r.text
        assert r.json()["error"]["type"] == "gateway_error"
        last = gw.mock.last()
        assert last is None or marker not in last["body"]
