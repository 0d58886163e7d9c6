"""The kgateway overlay's provider TLS must check the provider's name, not only the chain
(found by the mesh review).

deploy/kubernetes/overlays/kgateway/backends.yaml gives each provider a BackendConfigPolicy
`tls: {sni: <host>, wellKnownCACertificates: System}` and no `verifySubjectAltNames`. kgateway
(pkg/kgateway/extensions2/plugins/backendconfigpolicy/tls.go, `buildValidationContext`) turns
that into a CombinedValidationContext: the system CAs over SDS and
`match_typed_subject_alt_names` built from `verifySubjectAltNames` alone, so empty. Envoy then
checks the chain and nothing else (the overlay's own mTLS component says so: "without it
kgateway checks the chain only"), and `sni` is only what Envoy sends. Any certificate a public
CA issued for any name is accepted for api.openai.com: whoever can steer the connection (DNS,
an on-path hop) gets the provider key the server injects and every prompt. Every other
overlay checks the name (BackendTLSPolicy `validation.hostname`, the DestinationRule's
`subjectAltNames`, agentgateway's rustls verifier, our Envoy's SAN matcher).

The test builds each provider's cluster from the rendered BackendConfigPolicy the way kgateway
translates it (the system-CA SDS secret stands for a test CA), runs the real Envoy against an
upstream whose certificate, from that CA, names `evil.example`, and expects the connection
refused (503) with nothing delivered.
"""

from __future__ import annotations

import datetime
import http.server
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from extproc.envoy_bin import envoy_binary
from tests.harness import free_port
from tests.unit.test_kubernetes import needs_kubectl, of_kind, rendered

pytestmark = pytest.mark.envoy


def _cert(tmp: Path, name: str, issuer: tuple[Any, x509.Name] | None) -> tuple[Any, x509.Name]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    b = (x509.CertificateBuilder().subject_name(subject)
         .issuer_name(issuer[1] if issuer else subject).public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=1)))
    if issuer is None:
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    else:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
    cert = b.sign(issuer[0] if issuer else key, hashes.SHA256())
    (tmp / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / f"{name}.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return key, subject


class _Upstream:
    """A TLS server with a certificate for evil.example; records the credentials it gets."""

    def __init__(self, tmp: Path) -> None:
        got = self.got = []

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                got.append(self.headers.get("authorization"))
                self.send_response(200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *a: Any) -> None:
                pass

        self.port = free_port()
        self.server = http.server.HTTPServer(("127.0.0.1", self.port), H)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tmp / "evil.example.pem", tmp / "evil.example.key")
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _kgateway_tls(tls: dict[str, Any]) -> dict[str, Any]:
    """The UpstreamTlsContext kgateway builds from a BackendConfigPolicy's `tls` with
    `wellKnownCACertificates: System` (tls.go: translateTLSConfig, buildValidationContext)."""
    sans = [{"san_type": "DNS", "matcher": {"exact": s}}
            for s in tls.get("verifySubjectAltNames", [])]
    default: dict[str, Any] = {"match_typed_subject_alt_names": sans} if sans else {}
    return {"name": "envoy.transport_sockets.tls", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
                 "UpstreamTlsContext",
        "sni": tls.get("sni", ""),
        "common_tls_context": {"combined_validation_context": {
            "default_validation_context": default,
            "validation_context_sds_secret_config": {"name": "system_ca_cert"}}}}}


@pytest.fixture(scope="module")
def policies() -> dict[str, dict[str, Any]]:
    return {d["spec"]["targetRefs"][0]["name"]: d["spec"]["tls"]
            for d in of_kind(rendered("overlays/kgateway"), "BackendConfigPolicy")
            if d["spec"]["targetRefs"][0]["kind"] == "Backend"}


@pytest.fixture(scope="module")
def envoy(tmp_path_factory: pytest.TempPathFactory,
          policies: dict[str, dict[str, Any]]) -> Iterator[tuple[int, _Upstream]]:
    tmp = tmp_path_factory.mktemp("kgw-tls")
    ca = _cert(tmp, "test-public-ca", None)
    _cert(tmp, "evil.example", ca)
    up = _Upstream(tmp)
    listen, admin = free_port(), free_port()
    routes = [{"match": {"prefix": f"/{p}/"},
               "route": {"cluster": p, "prefix_rewrite": "/",
                         "host_rewrite_literal": policies[p]["sni"]}} for p in policies]
    clusters = [{"name": p, "type": "STATIC", "connect_timeout": "2s",
                 "load_assignment": {"cluster_name": p, "endpoints": [{"lb_endpoints": [
                     {"endpoint": {"address": {"socket_address": {
                         "address": "127.0.0.1", "port_value": up.port}}}}]}]},
                 "transport_socket": _kgateway_tls(tls)} for p, tls in policies.items()]
    doc = {"admin": {"address": {"socket_address": {"address": "127.0.0.1",
                                                     "port_value": admin}}},
           "static_resources": {
               "secrets": [{"name": "system_ca_cert", "validation_context": {
                   "trusted_ca": {"filename": str(tmp / "test-public-ca.pem")}}}],
               "listeners": [{"address": {"socket_address": {
                   "address": "127.0.0.1", "port_value": listen}},
                   "filter_chains": [{"filters": [{
                       "name": "envoy.filters.network.http_connection_manager",
                       "typed_config": {
                           "@type": "type.googleapis.com/envoy.extensions.filters.network."
                                    "http_connection_manager.v3.HttpConnectionManager",
                           "stat_prefix": "t",
                           "route_config": {"virtual_hosts": [
                               {"name": "v", "domains": ["*"], "routes": routes}]},
                           "http_filters": [{"name": "envoy.filters.http.router",
                                             "typed_config": {
                                                 "@type": "type.googleapis.com/envoy."
                                                 "extensions.filters.http.router.v3.Router"}}],
                       }}]}]}],
               "clusters": clusters}}
    path = tmp / "envoy.yaml"
    path.write_text(yaml.safe_dump(doc))
    proc = subprocess.Popen([envoy_binary(), "-c", str(path), "--log-level", "error",
                             "--base-id", str(listen)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{admin}/ready", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield listen, up
    finally:
        proc.terminate()
        proc.wait(10)
        up.server.shutdown()


@needs_kubectl
def test_every_provider_policy_names_the_provider(policies: dict[str, dict[str, Any]]) -> None:
    assert set(policies) == {"openai", "azure", "anthropic", "gemini", "vertex"}
    for provider, tls in policies.items():
        assert tls.get("verifySubjectAltNames") == [tls["sni"]], (
            f"{provider}: kgateway checks the chain only; the provider key would go to any "
            "host with a publicly trusted certificate")


@needs_kubectl
@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_a_certificate_for_another_name_gets_no_key(envoy: tuple[int, _Upstream],
                                                     provider: str) -> None:
    listen, up = envoy
    before = len(up.got)
    r = httpx.post(f"http://127.0.0.1:{listen}/{provider}/v1/x", content=b"{}",
                   headers={"authorization": "Bearer sk-OPERATOR-KEY"}, timeout=10)
    assert up.got[before:] == [], f"the injected key reached evil.example: {up.got[before:]}"
    assert r.status_code == 503
