"""Istio's ingress gateway with our EnvoyFilter (tests/mesh/istio.yaml: the
`outbound|50051||extproc.llm-gateway.svc.cluster.local` cluster, the filter inserted before the
router and on for every route, each VirtualService route's HTTP_ROUTE MERGE adding the
`x-extproc-route` initial metadata), run by the real Envoy against the real server and the
mock provider: every provider route reaches its own extproc route with auth, limits, the PII
guard and usage in the access log (tests/mesh/suite.py)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.harness import Gateway, Mock
from tests.mesh.common import PROVIDERS, reference_config, render, token
from tests.mesh.suite import ProviderRoutes, Shape

pytestmark = pytest.mark.envoy

SHAPE = Shape(prefixes={p: f"/{p}" for p in PROVIDERS},
              envoy_routes={p: f"llm-{p}" for p in PROVIDERS},
              extproc_routes={p: p for p in PROVIDERS},
              host="llm.example.com")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    log_dir = tmp_path_factory.mktemp("istio")
    gateway = Gateway(log_dir, reference_config(log_dir / "keys"), mock=mock,
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
