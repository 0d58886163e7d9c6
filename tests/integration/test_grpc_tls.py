"""Mutual TLS on the processor's gRPC port, with the real Envoy as the caller.

The server's header replies carry the provider key it injects, so a caller that reaches the
port must prove who it is: Envoy, with the client certificate its cluster presents, gets the
request through; a plain gRPC client, a TLS client without a certificate and one with a
certificate from another CA are refused in the handshake. Rotated files are used by the next
connection; broken ones are refused at start and kept out after it."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from extproc.auth.apikeys import hash_key
from extproc.envoy_config import ExtprocTls
from tests.harness import Gateway, Server

pytestmark = pytest.mark.envoy

API_KEY = "gw-test-key-tls"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


class CA:
    """A certificate authority that issues leaf certificates into files."""

    def __init__(self, name: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(minutes=5))
                     .not_valid_after(now + datetime.timedelta(days=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None),
                                    critical=True)
                     .sign(self.key, hashes.SHA256()))

    def write(self, path: Path) -> Path:
        path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        return path

    def issue(self, directory: Path, name: str, *, server: bool, dns: str | None = None,
              usage: x509.ObjectIdentifier | None = None) -> tuple[Path, Path, int]:
        """(cert file, key file, serial) of a new leaf for 127.0.0.1 (server; the DNS name
        `dns` instead when given) or a client; `usage`: its one extended key usage."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        serial = x509.random_serial_number()
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                   .issuer_name(self.cert.subject).public_key(key.public_key())
                   .serial_number(serial)
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1)))
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(dns) if dns else x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
        if usage is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return cert_path, key_path, serial


def _config(tmp: Path) -> dict[str, Any]:
    (tmp / "openai.key").write_text("provider-key-over-tls\n")
    return {"server": {"max_request_body_bytes": 1048576},
            "auth": {"api_keys": [{"id": "k", "sha256": hash_key(API_KEY), "subject": "alice"}]},
            "routes": [{"name": "openai", "provider": "openai", "auth": {"api_keys": True},
                        "upstream_credential": {"file": "openai.key"}}]}


class Pki:
    def __init__(self, tmp: Path) -> None:
        self.dir = tmp
        self.ca = CA("extproc test CA")
        self.ca_file = self.ca.write(tmp / "ca.pem")
        self.server_cert, self.server_key, self.server_serial = self.ca.issue(
            tmp, "server", server=True)
        self.client_cert, self.client_key, _ = self.ca.issue(tmp, "envoy", server=False)
        other = CA("another CA")
        self.stranger_cert, self.stranger_key, _ = other.issue(tmp, "stranger", server=False)

    def server_args(self) -> list[str]:
        return ["--tls-cert", str(self.server_cert), "--tls-key", str(self.server_key),
                "--tls-client-ca", str(self.ca_file)]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("tls-gw")
    tls = ExtprocTls(str(pki.client_cert), str(pki.client_key), str(pki.ca_file), "127.0.0.1")
    gateway = Gateway(tmp, _config(tmp), start_server=False, settings={"extproc_tls": tls})
    try:
        gateway.server = Server(gateway.config_path, tmp, port=gateway.server_port,
                                extra=pki.server_args())
        yield gateway
    finally:
        gateway.close()


def _chat(gw: Gateway) -> httpx.Response:
    return httpx.post(f"{gw.url}/openai/v1/chat/completions", json=CHAT, timeout=20,
                      headers={"authorization": f"Bearer {API_KEY}"})


def _health(target: str, credentials: grpc.ChannelCredentials | None) -> int:
    """The gRPC health status over a new channel; raises grpc.RpcError when refused."""
    options = [("grpc.ssl_target_name_override", "127.0.0.1")] if credentials else []
    channel = grpc.secure_channel(target, credentials, options) if credentials \
        else grpc.insecure_channel(target)
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status


def _tls_client(pki: Pki, cert: Path | None, key: Path | None) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=pki.ca_file.read_bytes(),
        private_key=key.read_bytes() if key else None,
        certificate_chain=cert.read_bytes() if cert else None)


def test_envoy_with_its_client_certificate_gets_the_request_through(gw: Gateway) -> None:
    r = _chat(gw)
    assert r.status_code == 200, r.text
    seen = gw.mock.last()
    assert seen is not None
    assert seen["headers"]["authorization"] == "Bearer provider-key-over-tls"


def test_callers_without_the_cas_certificate_are_refused(gw: Gateway, pki: Pki) -> None:
    target = f"127.0.0.1:{gw.server_port}"
    # the one that holds a certificate from the CA is let in: the refusals below are the
    # certificate's doing, not a broken port
    assert _health(target, _tls_client(pki, pki.client_cert, pki.client_key)) == \
        health_pb2.HealthCheckResponse.SERVING
    for credentials in (None, _tls_client(pki, None, None),
                        _tls_client(pki, pki.stranger_cert, pki.stranger_key)):
        with pytest.raises(grpc.RpcError) as info:
            _health(target, credentials)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def _first_bytes(pki: Pki, port: int, alpn: list[str] | None) -> bytes:
    """What the server sends after a client with the CA's certificate opens HTTP/2."""
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    context.load_cert_chain(pki.client_cert, pki.client_key)
    if alpn is not None:
        context.set_alpn_protocols(alpn)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000"))
        try:
            return tls.recv(64)
        except (ConnectionError, ssl.SSLError):
            return b""


def test_a_caller_that_does_not_negotiate_h2_is_cut(gw: Gateway, pki: Pki) -> None:
    """gRPC's TLS stack closes a connection whose handshake did not pick ALPN h2, client
    certificate or not: every gateway's TLS settings for the processor must offer h2 (the
    Kubernetes mtls components set it where the gateway does not do so itself)."""
    port = gw.server_port
    settings = 4   # the server's first frame on a connection it keeps: SETTINGS
    assert _first_bytes(pki, port, ["h2"])[3] == settings
    assert _first_bytes(pki, port, ["h2", "http/1.1"])[3] == settings   # the default of some
    assert _first_bytes(pki, port, None) == b""


#: the name the Kubernetes mtls components check the server's certificate for
SERVICE_NAME = "extproc.llm-gateway.svc.cluster.local"


@pytest.mark.parametrize("check", ["san", "auto_sni_san"])
def test_envoy_checks_the_service_name_as_the_kubernetes_gateways_do(
        tmp_path: Path, check: str) -> None:
    """The certificates docs/kubernetes.md makes (a DNS name and server auth for the server,
    client auth for the gateway) with Envoy set as the gateways set it: SNI the Service's
    name and that name checked either as a SAN (Istio, kgateway, agentgateway) or by
    auto_sni_san_validation (Envoy Gateway: sni and no SAN list), ALPN h2. The server's own
    certificate is no client certificate: it is refused."""
    ca = CA("extproc-ca")
    ca_file = ca.write(tmp_path / "ca.crt")
    server_cert, server_key, _ = ca.issue(tmp_path, "server", server=True, dns=SERVICE_NAME,
                                          usage=ExtendedKeyUsageOID.SERVER_AUTH)
    client_cert, client_key, _ = ca.issue(tmp_path, "client", server=False,
                                          usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    tls = ExtprocTls(str(client_cert), str(client_key), str(ca_file), SERVICE_NAME)

    def auto_sni(doc: dict[str, Any]) -> None:
        (cluster,) = [c for c in doc["static_resources"]["clusters"] if c["name"] == "extproc"]
        context = cluster["transport_socket"]["typed_config"]
        context["common_tls_context"]["validation_context"].pop(
            "match_typed_subject_alt_names")
        context["auto_sni_san_validation"] = True

    gateway = Gateway(tmp_path, _config(tmp_path), start_server=False,
                      settings={"extproc_tls": tls},
                      adjust=auto_sni if check == "auto_sni_san" else None)
    try:
        gateway.server = Server(gateway.config_path, tmp_path, port=gateway.server_port,
                                extra=["--tls-cert", str(server_cert), "--tls-key",
                                       str(server_key), "--tls-client-ca", str(ca_file)])
        r = _chat(gateway)
        assert r.status_code == 200, r.text
        target = f"127.0.0.1:{gateway.server_port}"
        as_client = grpc.ssl_channel_credentials(
            root_certificates=ca_file.read_bytes(), private_key=server_key.read_bytes(),
            certificate_chain=server_cert.read_bytes())
        with grpc.secure_channel(target, as_client,
                                 [("grpc.ssl_target_name_override", SERVICE_NAME)]) as channel:
            with pytest.raises(grpc.RpcError) as info:
                health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        gateway.close()


def _served_serial(pki: Pki, port: int) -> int:
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    context.load_cert_chain(pki.client_cert, pki.client_key)
    context.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_rotated_files_serve_the_next_connection_and_broken_ones_are_kept_out(
        gw: Gateway, pki: Pki) -> None:
    port = gw.server_port
    assert _served_serial(pki, port) == pki.server_serial
    # a broken certificate file (a half-written copy): the last good one goes on serving
    good = pki.server_cert.read_bytes()
    pki.server_cert.write_bytes(good[: len(good) // 2])
    assert _served_serial(pki, port) == pki.server_serial
    assert _chat(gw).status_code == 200
    assert "cannot be used, keeping the last good ones" in gw.server.proc.log()
    # a new pair, issued by the same CA, replaces it for new connections
    new_cert, new_key, new_serial = pki.ca.issue(pki.dir, "server-2", server=True)
    pki.server_key.write_bytes(new_key.read_bytes())
    pki.server_cert.write_bytes(new_cert.read_bytes())
    deadline = time.monotonic() + 10
    while _served_serial(pki, port) != new_serial:
        assert time.monotonic() < deadline, "the rotated certificate was never served"
        time.sleep(0.1)
    assert _chat(gw).status_code == 200


def _serve(args: list[str], config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "extproc", "serve", "--config", str(config),
                           "--listen", "127.0.0.1:0", *args],
                          capture_output=True, text=True, timeout=30)


def test_unusable_tls_files_stop_the_server_at_start(tmp_path: Path, pki: Pki) -> None:
    config = tmp_path / "extproc.yaml"
    config.write_text("routes: [{name: openai, provider: openai}]\n")
    other_key = pki.client_key   # a real key, but not the server certificate's
    cases = {
        "is not the key of": ["--tls-cert", str(pki.server_cert), "--tls-key",
                              str(other_key)],
        "No such file": ["--tls-cert", str(tmp_path / "missing.pem"), "--tls-key",
                         str(pki.server_key)],
        "holds no PEM": ["--tls-cert", str(pki.server_cert), "--tls-key",
                         str(pki.server_key), "--tls-client-ca", str(config)],
        "go together": ["--tls-client-ca", str(pki.ca_file)],
    }
    for said, args in cases.items():
        done = _serve(args, config)
        assert done.returncode != 0, args
        assert said in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr


def test_a_port_off_this_host_without_client_certificates_is_named_in_a_warning(
        tmp_path: Path) -> None:
    config = tmp_path / "extproc.yaml"
    config.write_text("routes: [{name: openai, provider: openai}]\n")
    proc = subprocess.Popen([sys.executable, "-m", "extproc", "serve", "--config", str(config),
                             "--listen", "0.0.0.0:0"], stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 30
        lines = []
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            lines.append(line)
            if "serving ext_proc" in line:
                break
        text = "".join(lines)
        assert "takes any caller that reaches it" in text, text
        assert "0.0.0.0:0" in text
    finally:
        proc.terminate()
        proc.wait(10)
