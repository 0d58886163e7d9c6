"""The unified front on a gateway that routes before its ext_proc runs and never routes again
(found by the mesh review).

docs/unified-front.md tells agentgateway users (with Envoy Gateway, Istio and kgateway) that
"a front there needs an HTTPRoute rule per backend matching that header" (x-extproc-backend),
and names FULL_DUPLEX_STREAMED "agentgateway's mode" for the front. But agentgateway picks the
route before a route's ext_proc runs (crates/agentgateway/src/proxy/httpproxy.rs:
`select_route_chain`, then `apply_request_policies` -> `ext_proc.mutate_request`) and never
picks again: `clear_route_cache` appears only in its proto. Nothing strips a client's own
x-extproc-backend before routing either. So the client's header picks the backend rule, and
the request the processor translated for another backend goes there with THAT backend's
credential: the client chooses which host receives which provider key (the fault fixed for
`provider: auto` on Envoy, back on agentgateway).

agentgateway cannot run here; the shape is our Envoy with what agentgateway does: body modes
FULL_DUPLEX_STREAMED, the route kept after the processor's reply (`route_cache_action:
RETAIN`), no early removal of x-extproc-backend. The processor now refuses a request that
arrives carrying one of its routing headers (`routing.ROUTING_HEADERS`): no shipped config
lets a client's through, so one it sees was routed by.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.harness import Gateway, Mock
from tests.integration.test_duplex_request import _all_duplex
from tests.integration.test_front import MSG, client, front_config, rid

pytestmark = pytest.mark.envoy


def _agentgateway_like(doc: dict[str, Any]) -> None:
    _all_duplex(doc)
    hcm = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"]
    hcm.pop("early_header_mutation_extensions", None)
    for f in hcm["http_filters"]:
        if f["name"] == "envoy.filters.http.ext_proc":
            f["typed_config"]["route_cache_action"] = "RETAIN"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    base = tmp_path_factory.mktemp("front-agw")
    g = Gateway(base, front_config(base), mock=mock, adjust=_agentgateway_like)
    yield g
    g.close()


def test_the_clients_routing_header_is_refused_and_no_key_crosses(gw: Gateway) -> None:
    r = rid()
    before = gw.mock.last()
    with pytest.raises(openai.BadRequestError) as refused:
        client(gw, r, **{"x-extproc-backend": "openai"}).chat.completions.create(
            model="claude-sonnet-4-5", messages=MSG)
    assert refused.value.status_code == 400
    assert "x-extproc-backend" in str(refused.value)
    assert gw.mock.last() == before   # nothing went upstream, with no key at all
    assert gw.access_log(r)["route"] == "unified-openai"   # (routed by the client's header)


def test_without_the_header_the_request_meets_the_catch_all(gw: Gateway) -> None:
    """Why the docs no longer offer the front on such a gateway: a client that sends no
    routing header gets no backend route at all (the route was chosen before the processor
    named the backend), only the catch-all's 404."""
    r = rid()
    with pytest.raises(openai.APIStatusError) as refused:
        client(gw, r).chat.completions.create(model="claude-sonnet-4-5", messages=MSG)
    assert refused.value.status_code == 404
