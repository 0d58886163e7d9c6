"""Renders the reference Envoy config (envoy/envoy.yaml) for one place: local, compose, test,
kubernetes-sidecar.

The template is the single source of truth; a place only fills in addresses, ports, the
fail mode, the body-size and request-header limits (taken from the extproc config, so Envoy's
limits and the server's agree, and both sides' gRPC message limits follow the body limit).
An upstream given as `https://host[:port]` gets an upstream TLS context that sends `host` as
SNI and accepts only a certificate that chains to `ca_bundle` AND names `host` (a DNS SAN,
wildcards in the certificate allowed; an IP SAN for an IP address); `http://host:port` stays
plain (the mock provider). A place with `extproc_unix` reaches the processor over that unix
socket (the Kubernetes sidecar pod: no network hop) instead of host:port.
"""

from __future__ import annotations

import copy
import ipaddress
import os
import string
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from . import errors
from .config import (
    DEFAULT_MAX_BODY,
    DEFAULT_MAX_HEADERS_COUNT,
    DEFAULT_MAX_HEADERS_KB,
    PROVIDERS,
    ServerConfig,
    grpc_max_message_bytes,
)

#: envoy/envoy.yaml; the package holds it as a link to that file, so an installed wheel
#: (which copies it) renders the same configs as a checkout
_PACKAGED = Path(__file__).resolve().parent / "envoy_template.yaml"
TEMPLATE = Path(os.environ.get("EXTPROC_ENVOY_TEMPLATE", _PACKAGED))
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


@dataclass(frozen=True)
class ExtprocTls:
    """Mutual TLS to the processor (`extproc serve --tls-cert/--tls-key/--tls-client-ca`):
    Envoy's client certificate and key, the CA the server's certificate must chain to, and
    the name (DNS or IP) that certificate must carry."""

    cert: str
    key: str
    ca: str
    server_name: str


@dataclass(frozen=True)
class EnvoySettings:
    listen_address: str = "127.0.0.1"
    listen_port: int = 10000
    admin_port: int = 9901
    #: loopback everywhere: whoever reaches the admin API can stop Envoy, or turn on debug
    #: logs (POST /logging) that print the provider key the processor injects
    admin_address: str = "127.0.0.1"
    #: a listener on listen_address that serves only the admin's GET /stats/prometheus and
    #: GET /ready, proxied to the admin on loopback (compose: for Prometheus); None: none
    stats_port: int | None = None
    extproc_host: str = "127.0.0.1"
    extproc_port: int = 50051
    #: a unix socket path: the processor listens there (`extproc serve --unix PATH`)
    extproc_unix: str | None = None
    #: mutual TLS to the processor (None: plain gRPC, for a loopback address or a socket)
    extproc_tls: ExtprocTls | None = None
    upstreams: dict[str, str] = field(
        default_factory=lambda: dict.fromkeys(PROVIDERS, "http://127.0.0.1:8081"))
    failure_mode_allow: bool = False
    message_timeout: str = "5s"
    max_request_body_bytes: int = DEFAULT_MAX_BODY
    max_request_headers_kb: int = DEFAULT_MAX_HEADERS_KB
    max_request_headers_count: int = DEFAULT_MAX_HEADERS_COUNT
    #: the CAs an https:// upstream's certificate must chain to (tests use their own)
    ca_bundle: str = CA_BUNDLE
    #: the unified front's routes (`/v1/`): rendered only for a server config that has the
    #: `unified` route they name (`serves_front`), else `/v1/` would reach a missing route
    front: bool = True


#: the providers' public endpoints
KUBERNETES_UPSTREAMS: dict[str, str] = {
    "openai": "https://api.openai.com",
    "azure": "https://example-resource.openai.azure.com",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
    "vertex": "https://us-central1-aiplatform.googleapis.com",
}

PLACES: dict[str, EnvoySettings] = {
    "local": EnvoySettings(),
    "compose": EnvoySettings(listen_address="0.0.0.0", stats_port=9902,
                             extproc_host="extproc",
                             upstreams=dict.fromkeys(PROVIDERS, "http://mock:8081")),
    "test": EnvoySettings(),
    # deploy/kubernetes/overlays/sidecar: Envoy and the server in one pod, sharing an
    # emptyDir for the socket; the upstreams are the providers themselves (edit the Azure
    # resource and the Vertex region in the overlay's copy, or re-render with --upstream)
    "kubernetes-sidecar": EnvoySettings(
        listen_address="0.0.0.0", extproc_unix="/var/run/extproc/extproc.sock",
        upstreams=KUBERNETES_UPSTREAMS),
}


def settings_for(place: str, **changes: Any) -> EnvoySettings:
    if place not in PLACES:
        raise ValueError(f"unknown place {place!r} (one of: {', '.join(PLACES)})")
    return replace(PLACES[place], **changes)


def serves_front(routes: Any) -> bool:
    """Whether a server config's routes include the unified front the template routes
    `/v1/` to (`x-extproc-route: unified`)."""
    return "unified" in routes


def limits_of(server: ServerConfig) -> dict[str, int]:
    """The settings that must equal the extproc server config's (as `settings_for` changes)."""
    return {"max_request_body_bytes": server.max_request_body_bytes,
            "max_request_headers_kb": server.max_request_headers_kb,
            "max_request_headers_count": server.max_request_headers_count}


def _split(url: str) -> tuple[str, int, bool]:
    """(host, port, TLS?) of an upstream URL, which must say its scheme: a bare host would
    leave it to a default, and the provider key the gateway injects would go in plain text
    to a host that was meant to be reached over TLS."""
    parts = urlsplit(url)
    try:
        port = parts.port   # ValueError: not a port
        if parts.scheme not in ("http", "https") or not parts.hostname \
                or parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(url)
    except ValueError:
        raise ValueError(f"an upstream is https://host[:port] (TLS) or http://host[:port] "
                         f"(plain text), got {url!r}") from None
    tls = parts.scheme == "https"
    return parts.hostname, port or (443 if tls else 80), tls


def check_upstream(url: str) -> str | None:
    """Raise ValueError for an upstream URL `render` cannot use; a warning (str) for plain
    HTTP to a host that is not local (the provider key goes unencrypted), else None."""
    host, _, tls = _split(url)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:   # a name: local when it has no dot (localhost, a container's)
        local = "." not in host
    else:
        local = address.is_loopback or address.is_private
    if tls or local:
        return None
    return (f"upstream {url} is plain HTTP: the provider key the gateway injects goes "
            "unencrypted (use https:// for a provider)")


def _cel_kind(fmt: str) -> str:
    """A CEL expression of an Envoy local reply's error type (Anthropic) or status (Google)
    from its HTTP status: the same table as the processor's own errors (`errors.KINDS`)."""
    table = errors.KINDS[fmt]
    keys = ", ".join(f"{code}: true" for code in table)
    names = ", ".join(f"{code}: '{name}'" for code, name in table.items())
    return (f"response.code in {{{keys}}} ? {{{names}}}[response.code] : "
            f"'{errors.DEFAULT_KINDS[fmt]}'")


def render_dict(s: EnvoySettings) -> dict[str, Any]:
    """The rendered config as a dict (tests may adjust it before dumping)."""
    values: dict[str, Any] = {
        "LISTEN_ADDRESS": s.listen_address, "LISTEN_PORT": s.listen_port,
        "ENVOY_ADMIN_PORT": s.admin_port, "ADMIN_ADDRESS": s.admin_address,
        "EXTPROC_HOST": s.extproc_host,
        "EXTPROC_PORT": s.extproc_port,
        "FAILURE_MODE_ALLOW": "true" if s.failure_mode_allow else "false",
        "MESSAGE_TIMEOUT": s.message_timeout,
        "MAX_REQUEST_BODY_BYTES": s.max_request_body_bytes,
        "GRPC_MAX_MESSAGE_BYTES": grpc_max_message_bytes(s.max_request_body_bytes),
        "MAX_REQUEST_HEADERS_KB": s.max_request_headers_kb,
        "MAX_REQUEST_HEADERS_COUNT": s.max_request_headers_count,
        "ANTHROPIC_ERROR_TYPE": _cel_kind("anthropic"),
        "GOOGLE_ERROR_STATUS": _cel_kind("google"),
    }
    tls_hosts = {}
    for provider in PROVIDERS:
        host, port, tls = _split(s.upstreams[provider])
        values[f"{provider.upper()}_HOST"] = host
        values[f"{provider.upper()}_PORT"] = port
        if tls:
            tls_hosts[provider] = host
    doc = yaml.safe_load(string.Template(TEMPLATE.read_text()).substitute(values))
    for cluster in doc["static_resources"]["clusters"]:
        if cluster["name"] in tls_hosts:
            cluster["transport_socket"] = upstream_tls(tls_hosts[cluster["name"]], s.ca_bundle)
        if cluster["name"] == "extproc" and s.extproc_unix:
            cluster["type"] = "STATIC"
            cluster.pop("dns_lookup_family", None)
            cluster["load_assignment"]["endpoints"] = [{"lb_endpoints": [
                {"endpoint": {"address": {"pipe": {"path": s.extproc_unix}}}}]}]
        if cluster["name"] == "extproc" and s.extproc_tls:
            cluster["transport_socket"] = extproc_tls(s.extproc_tls)
    for listener in doc["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            for f in chain["filters"]:
                hcm = f["typed_config"]
                if not s.front:
                    for host in hcm.get("route_config", {}).get("virtual_hosts", []):
                        host["routes"] = [r for r in host["routes"]
                                          if r.get("name", "").split("-")[0] != "unified"]
                _say_unrouted(hcm)
    if s.stats_port is not None:
        doc["static_resources"]["listeners"].append(
            stats_listener(s.listen_address, s.stats_port))
        doc["static_resources"]["clusters"].append(admin_cluster(s.admin_port))
    return doc


#: what the stats listener lets through to the admin API (GET only; all else is a 404)
STATS_PATHS = ("/stats/prometheus", "/ready")
ADMIN_CLUSTER = "envoy_admin"


def stats_listener(address: str, port: int) -> dict[str, Any]:
    """A listener that exposes the admin's read-only STATS_PATHS and nothing else, so the
    admin itself can stay on loopback (its other endpoints change Envoy's state, and debug
    logging would print the injected provider keys)."""
    get = [{"name": ":method", "string_match": {"exact": "GET"}}]
    routes: list[dict[str, Any]] = [
        {"match": {"path": path, "headers": get}, "route": {"cluster": ADMIN_CLUSTER}}
        for path in STATS_PATHS]
    routes.append({"match": {"prefix": "/"}, "direct_response": {"status": 404}})
    return {
        "name": "envoy_stats",
        "address": {"socket_address": {"address": address, "port_value": port}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network."
                         "http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "envoy_stats",
                "normalize_path": True, "merge_slashes": True,
                "path_with_escaped_slashes_action": "REJECT_REQUEST",
                "route_config": {"name": "envoy_stats", "virtual_hosts": [
                    {"name": "envoy_stats", "domains": ["*"], "routes": routes}]},
                "http_filters": [{
                    "name": "envoy.filters.http.router",
                    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters."
                                              "http.router.v3.Router"}}]}}]}]}


def admin_cluster(admin_port: int) -> dict[str, Any]:
    """The admin API on loopback, as the stats listener's upstream."""
    return {"name": ADMIN_CLUSTER, "type": "STATIC", "connect_timeout": "1s",
            "load_assignment": {"cluster_name": ADMIN_CLUSTER, "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {
                    "address": "127.0.0.1", "port_value": admin_port}}}}]}]}}


def served_prefixes(hcm: dict[str, Any]) -> list[str]:
    """The path prefixes an HTTP connection manager's routes serve, in route order."""
    out: list[str] = []
    for host in hcm.get("route_config", {}).get("virtual_hosts", []):
        for r in host["routes"]:
            prefix = r.get("match", {}).get("prefix")
            if prefix and prefix != "/" and prefix not in out:
                out.append(prefix)
    return out


def _say_unrouted(hcm: dict[str, Any]) -> None:
    """Envoy's 404 for a path no route matches has no body of its own: name the prefixes the
    gateway serves instead (the first local-reply mapper, before the provider formats, which
    go by a prefix such a path does not have)."""
    mappers = hcm.get("local_reply_config", {}).get("mappers")
    prefixes = served_prefixes(hcm)
    if mappers is None or not prefixes:
        return
    message = ("gateway error: no route for this path; the gateway serves paths under "
               + ", ".join(prefixes) + " (route_not_found)")
    mappers.insert(0, {
        "filter": {"extension_filter": {
            "name": "envoy.access_loggers.extension_filters.cel",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3."
                         "ExpressionFilter",
                "expression": "response.code_details == 'route_not_found'"}}},
        "body_format_override": {"json_format": {"error": {
            "message": message, "type": "gateway_error", "code": "route_not_found"}}}})


def upstream_tls(host: str, ca_bundle: str = CA_BUNDLE) -> dict[str, Any]:
    """The transport socket for an https:// upstream: its certificate must chain to
    `ca_bundle` and name `host` (Envoy checks the chain only, unless told which names)."""
    try:
        ipaddress.ip_address(host)
        san_type, sni = "IP_ADDRESS", None      # SNI carries host names only (RFC 6066)
    except ValueError:
        san_type, sni = "DNS", host
    tls: dict[str, Any] = {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3"
                 ".UpstreamTlsContext", **({"sni": sni} if sni else {}),
        "common_tls_context": {"validation_context": {
            "trusted_ca": {"filename": ca_bundle},
            "match_typed_subject_alt_names": [{"san_type": san_type,
                                               "matcher": {"exact": host}}]}}}
    return {"name": "envoy.transport_sockets.tls", "typed_config": tls}


def extproc_tls(t: ExtprocTls) -> dict[str, Any]:
    """The processor cluster's transport socket: Envoy shows its client certificate, and the
    server's must chain to `t.ca` and name `t.server_name`; gRPC over h2 (ALPN)."""
    socket = upstream_tls(t.server_name, t.ca)
    common = socket["typed_config"]["common_tls_context"]
    common["tls_certificates"] = [{"certificate_chain": {"filename": t.cert},
                                   "private_key": {"filename": t.key}}]
    common["alpn_protocols"] = ["h2"]
    return socket


def dump(doc: dict[str, Any]) -> str:
    name = "envoy.yaml" if TEMPLATE == _PACKAGED else TEMPLATE.name
    head = f"# Generated from {name} by `extproc render-envoy`: edit the template.\n"
    return head + yaml.safe_dump(copy.deepcopy(doc), sort_keys=False, width=120)


def render(s: EnvoySettings) -> str:
    return dump(render_dict(s))
