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
