"""extproc.envoy_config: an https:// upstream gets TLS that checks the certificate's name, not
only its chain, and the request header limits are the extproc config's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from extproc import config as cfgmod
from extproc import envoy_config, loader


def cluster(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in doc["static_resources"]["clusters"] if c["name"] == name)


def hcm(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"]


def test_an_https_upstream_must_present_a_certificate_for_its_host() -> None:
    doc = envoy_config.render_dict(envoy_config.settings_for(
        "local", ca_bundle="/ca.pem", upstreams={
            **envoy_config.PLACES["local"].upstreams, "openai": "https://api.openai.com",
            "azure": "https://10.1.2.3:8443", "vertex": "http://127.0.0.1:8081"}))
    tls = cluster(doc, "openai")["transport_socket"]["typed_config"]
    assert tls["sni"] == "api.openai.com"
    assert tls["common_tls_context"]["validation_context"] == {
        "trusted_ca": {"filename": "/ca.pem"},
        "match_typed_subject_alt_names": [{"san_type": "DNS",
                                           "matcher": {"exact": "api.openai.com"}}]}
    ip = cluster(doc, "azure")["transport_socket"]["typed_config"]
    assert "sni" not in ip                       # SNI names hosts, never addresses
    assert ip["common_tls_context"]["validation_context"]["match_typed_subject_alt_names"] == [
        {"san_type": "IP_ADDRESS", "matcher": {"exact": "10.1.2.3"}}]
    assert "transport_socket" not in cluster(doc, "vertex")


def test_the_default_trust_is_the_system_bundle() -> None:
    doc = envoy_config.render_dict(envoy_config.settings_for(
        "compose", upstreams=dict.fromkeys(cfgmod.PROVIDERS, "https://llm.example")))
    for name in cfgmod.PROVIDERS:
        ctx = cluster(doc, name)["transport_socket"]["typed_config"]["common_tls_context"]
        assert ctx["validation_context"]["trusted_ca"] == {"filename": envoy_config.CA_BUNDLE}


def test_header_limits_and_path_normalisation_are_rendered() -> None:
    server = loader.parse({"server": {"max_request_headers_kb": 64,
                                      "max_request_headers_count": 120},
                           "routes": [{"name": "r", "provider": "openai"}]}).server
    conf = hcm(envoy_config.render_dict(envoy_config.settings_for(
        "test", **envoy_config.limits_of(server))))
    assert conf["max_request_headers_kb"] == 64
    assert conf["common_http_protocol_options"] == {"max_headers_count": 120}
    assert (conf["normalize_path"], conf["merge_slashes"]) == (True, True)
    assert conf["path_with_escaped_slashes_action"] == "REJECT_REQUEST"
    # ext_proc is off by default and on for every route of the route config
    (ext_proc,) = [f for f in conf["http_filters"] if f["name"].endswith("ext_proc")]
    assert ext_proc["disabled"] is True
    enable = conf["route_config"]["typed_per_filter_config"]["envoy.filters.http.ext_proc"]
    assert enable["disabled"] is False


def test_every_place_keeps_the_admin_api_on_loopback() -> None:
    """Found by the mesh review: compose bound Envoy's admin to 0.0.0.0, so any container
    on the compose network could POST /logging?router=debug and read the injected provider
    key in Envoy's log. Prometheus now scrapes a listener of its own instead."""
    for place in envoy_config.PLACES:
        doc = envoy_config.render_dict(envoy_config.settings_for(place))
        assert doc["admin"]["address"]["socket_address"]["address"] == "127.0.0.1", place


def test_the_stats_listener_lets_only_reads_of_stats_and_readiness_through(
        tmp_path: Path) -> None:
    """Through the real Envoy: GET /stats/prometheus and /ready reach the admin; the admin's
    other endpoints (debug logging, config dump, quit), a POST, or a path dressed up to
    look like the stats path, get a 404 and never reach it."""
    from tests.harness import Envoy, free_port
    stats, admin = free_port(), free_port()
    doc = envoy_config.render_dict(envoy_config.settings_for(
        "test", listen_port=free_port(), admin_port=admin, stats_port=stats))
    envoy = Envoy(doc, tmp_path)
    try:
        envoy.proc.wait_port(stats, 60)
        url = f"http://127.0.0.1:{stats}"
        r = httpx.get(f"{url}/stats/prometheus", timeout=10)
        assert r.status_code == 200 and "envoy_server_live" in r.text
        assert httpx.get(f"{url}/ready", timeout=10).status_code == 200
        for method, path in (("POST", "/logging?router=debug"), ("GET", "/config_dump"),
                             ("POST", "/quitquitquit"), ("POST", "/stats/prometheus"),
                             ("GET", "/stats/prometheus/../config_dump"),
                             ("GET", "/stats/prometheus%2F..%2Fconfig_dump"),
                             ("GET", "/stats")):
            r = httpx.request(method, f"{url}{path}", timeout=10)
            assert r.status_code in (400, 404), (method, path, r.status_code)
        levels = httpx.get(f"http://127.0.0.1:{admin}/logging", timeout=10)
        assert "router: debug" not in levels.text    # the POST never reached the admin
        assert envoy.proc.alive()
    finally:
        envoy.stop()
