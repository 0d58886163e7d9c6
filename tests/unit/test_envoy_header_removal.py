"""A client never picks the unified front's backend or an auto route's provider itself:
every rendered Envoy config removes its `x-extproc-backend` and `x-extproc-provider` before
routing, which matters where the processor sets nothing (unreachable on a fail-open Envoy).
(Found by a review of the tests: the real-Envoy test of an auto route cannot see the
removal, since the processor overwrites the header on every request it handles.)"""

from __future__ import annotations

import pytest

from extproc import envoy_config
from tests.unit.test_envoy_config import hcm


@pytest.mark.parametrize("place", sorted(envoy_config.PLACES))
def test_every_rendered_config_removes_a_clients_provider_and_backend_headers(place: str
                                                                              ) -> None:
    conf = hcm(envoy_config.render_dict(envoy_config.settings_for(place)))
    removed = {m.get("remove") for ext in conf.get("early_header_mutation_extensions", [])
               for m in ext["typed_config"].get("mutations", [])}
    assert {"x-extproc-provider", "x-extproc-backend"} <= removed, (place, removed)


def test_the_routing_headers_are_the_ones_the_gateway_sets() -> None:
    from extproc import autoroute, routing
    from extproc.front import policy as front

    assert set(routing.ROUTING_HEADERS) == {autoroute.PROVIDER_HEADER, front.BACKEND_HEADER}


@pytest.mark.parametrize("name", ["x-extproc-provider", "x-extproc-backend"])
async def test_a_request_that_arrives_with_a_routing_header_is_refused(name: str) -> None:
    """Where the proxy in front does not remove it (agentgateway routes before its ext_proc
    runs and never again), the client's header chose the route: the processor refuses it
    before any policy, so no credential is set for a route the client picked."""
    from envoy.service.ext_proc.v3 import external_processor_pb2 as pb

    from extproc import loader
    from extproc.exchange import Exchange
    from tests.unit.test_exchange import request_headers

    cfg = loader.parse({"routes": [{"name": "r", "provider": "openai", "auth": "none"}]})
    ex = Exchange(cfg.routes["r"], "r", cfg.server.max_request_body_bytes)
    replies = [pb.ProcessingResponse.FromString(x) if isinstance(x, bytes) else x
               for x in await ex.handle(request_headers({name: "openai"}))]
    assert [r.WhichOneof("response") for r in replies] == ["immediate_response"]
    assert replies[0].immediate_response.status.code == 400
    assert b"only the gateway" in replies[0].immediate_response.body
    assert not ex._req_set
