"""extproc.envoy_config: an https:// upstream gets TLS that checks the certificate's name, not
only its chain, and the request header limits are the extproc config's."""

from __future__ import annotations

from typing import Any

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
