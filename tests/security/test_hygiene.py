"""Hygiene through the real Envoy (issue #8): one spelling per path, clear answers to too many
or too large headers, upstream TLS that checks the certificate's name, and an access log
whose rate-limit field is plain JSON.

* Paths: `..` (also `%2e%2e`), `.`, `//` are resolved before routing, so a request reaches
  the upstream only under the route its normalised path names, on that path; `%2F`, `%5C`
  (any case) are refused with a 400; a path that normalises out of every provider prefix gets
  a 404 and goes nowhere.
* Headers: past Envoy's limits, a 431 (HTTP/1.1) and never a 500 or a dropped connection; just
  under them, where the gateway's own headers would not fit, the processor's 431 in the
  provider's format; HTTP/2 gets its stream refused. A large bearer token still gets the
  processor's 401.
* Upstream TLS: a certificate that chains to a trusted CA but names another host is refused
  before any request is sent; the right name (or a wildcard covering it) works, with SNI.
"""

from __future__ import annotations

import datetime
import http.client
import json
import shutil
import socket
import ssl
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from extproc.auth.apikeys import hash_key
from extproc.config import PROVIDERS
from tests.harness import Gateway, Mock, add_route

pytestmark = pytest.mark.envoy

API_KEY = "gw-hygiene-key"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
MESSAGES = {"model": "claude-sonnet-4-5", "max_tokens": 16,
            "messages": [{"role": "user", "content": "hi"}]}
GENERATE = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
MAX_KB, MAX_COUNT = 96, 100   # the reference config's request header limits


def config() -> dict[str, Any]:
    routes: list[dict[str, Any]] = [{"name": p, "provider": p} for p in PROVIDERS]
    routes.append({"name": "keyed", "provider": "openai", "auth": {"api_keys": True}})
    routes.append({"name": "limited", "provider": "openai", "rate_limits": [
        {"name": "per-client", "key": ["header:x-test-client"],
         "requests": [{"limit": 5, "per": "1h"}]}]})
    return {"server": {"max_request_body_bytes": 1048576},
            "auth": {"api_keys": [{"id": "k", "sha256": hash_key(API_KEY),
                                   "subject": "svc"}]},
            "routes": routes}


def adjust(doc: dict[str, Any]) -> None:
    add_route(doc, "/keyed/", "openai", "keyed")
    add_route(doc, "/limited/", "openai", "limited")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path_factory.mktemp("hygiene"), config(), mock=mock, adjust=adjust)
    yield gateway
    gateway.close()


class Answer:
    def __init__(self, status: int, body: bytes) -> None:
        self.status, self.body = status, body

    def json(self) -> Any:
        return json.loads(self.body)


def send(gw: Gateway, path: str, body: dict[str, Any] | None = None,
         headers: list[tuple[str, str]] = (), rid: str | None = None) -> tuple[Answer, str]:
    """POST `path` exactly as written (no client-side normalisation), with `headers` in
    order; returns the answer and the request id the request carried."""
    rid = rid or uuid.uuid4().hex
    conn = http.client.HTTPConnection("127.0.0.1", gw.envoy.port, timeout=30)
    try:
        conn.putrequest("POST", path, skip_accept_encoding=True)
        data = json.dumps(body if body is not None else CHAT).encode()
        for name, value in [("content-type", "application/json"),
                            ("content-length", str(len(data))), ("x-request-id", rid),
                            *headers]:
            conn.putheader(name, value)
        conn.endheaders(data)
        r = conn.getresponse()
        return Answer(r.status, r.read()), rid
    finally:
        conn.close()


def reached(gw: Gateway, rid: str) -> dict[str, Any] | None:
    """What the upstream received for this request, or None if it never got there."""
    last = gw.mock.last()
    return last if last is not None and last["headers"].get("x-request-id") == rid else None


# --- paths -------------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "route", "upstream", "body"), [
    ("/openai/./v1/chat/completions", "openai", "/v1/chat/completions", CHAT),
    ("/openai//v1/chat/completions", "openai", "/v1/chat/completions", CHAT),
    ("//openai/v1//chat/completions", "openai", "/v1/chat/completions", CHAT),
    ("/openai/v1/x/../chat/completions", "openai", "/v1/chat/completions", CHAT),
    ("/openai/v1/../../anthropic/v1/messages", "anthropic", "/v1/messages", MESSAGES),
    ("/openai/%2e%2e/anthropic/v1/messages", "anthropic", "/v1/messages", MESSAGES),
    ("/openai/%2E%2E/anthropic/v1/messages", "anthropic", "/v1/messages", MESSAGES),
    ("/healthz/../openai/v1/chat/completions", "openai", "/v1/chat/completions", CHAT),
    ("/anthropic/v1/../../gemini/v1beta/models/gemini-2.5-flash:generateContent", "gemini",
     "/v1beta/models/gemini-2.5-flash:generateContent", GENERATE),
])
def test_a_path_reaches_upstream_only_as_its_normal_form_names_it(
        gw: Gateway, path: str, route: str, upstream: str, body: dict[str, Any]) -> None:
    answer, rid = send(gw, path, body)
    assert answer.status == 200, answer.body
    seen = reached(gw, rid)
    assert seen is not None and seen["path"] == upstream
    entry = gw.access_log(rid)
    assert entry["route"] == route and entry["extproc"]["provider"] == route


@pytest.mark.parametrize("path", [
    "/openai/v1%2Fchat/completions", "/openai/v1%2fchat/completions",
    "/openai%2F..%2Fanthropic/v1/messages", "/openai/v1%5Cchat/completions",
    "/openai/v1%5cchat/completions", "/openai/%2e%2e%2fanthropic/v1/messages",
])
def test_an_escaped_slash_or_backslash_is_refused(gw: Gateway, path: str) -> None:
    answer, rid = send(gw, path)
    assert answer.status == 400
    assert answer.json()["error"]["code"] == "path_normalization_failed"
    assert reached(gw, rid) is None


@pytest.mark.parametrize("path", [
    "/nowhere/v1/chat/completions", "/openai", "/gemini/..", "/v2/chat/completions",
])
def test_a_path_out_of_every_provider_prefix_gets_a_404_and_goes_nowhere(
        gw: Gateway, path: str) -> None:
    answer, rid = send(gw, path)
    assert answer.status == 404, answer.body
    error = answer.json()["error"]
    assert error["code"] == "route_not_found" and error["type"] == "gateway_error"
    # the client is told where the gateway serves, not just that nothing matched
    assert "/openai/" in error["message"] and "/anthropic/" in error["message"], error
    assert "/gemini/" in error["message"] and "/vertex/" in error["message"], error
    assert reached(gw, rid) is None


@pytest.mark.parametrize("path", [
    "/openai/../v1/chat/completions", "/openai/%2e%2e/v1/messages",
    "/anthropic/v1/../../../v1/messages",
])
def test_a_path_out_of_a_provider_prefix_into_v1_is_the_unified_fronts(
        gw: Gateway, path: str) -> None:
    """Normalised, these are /v1/... paths: the unified front's, whose Envoy route never
    forwards a request by itself (this config serves no front, so the processor refuses)."""
    answer, rid = send(gw, path)
    assert answer.status == 404, answer.body
    assert "route 'unified' is not configured" in answer.json()["error"]["message"]
    assert gw.access_log(rid)["route"] == "unified"
    assert reached(gw, rid) is None


# --- request headers ---------------------------------------------------------------------

def filler(total: int, width: int = 8000) -> list[tuple[str, str]]:
    """Headers whose names and values add up to `total` bytes."""
    out: list[tuple[str, str]] = []
    while total > 0:
        name = f"x-fill-{len(out)}"
        n = max(0, min(width, total - len(name)))
        out.append((name, "a" * n))
        total -= len(name) + n
    return out


def many(n: int) -> list[tuple[str, str]]:
    return [(f"x-h{i}", "v") for i in range(n)]


@pytest.mark.parametrize("headers", [filler(MAX_KB * 1024 + 2000, width=100_000),
                                     many(MAX_COUNT + 50)], ids=["too-large", "too-many"])
def test_past_envoys_limits_http1_gets_a_431(gw: Gateway, headers: list[tuple[str, str]]
                                             ) -> None:
    answer, rid = send(gw, "/openai/v1/chat/completions", headers=headers)
    assert answer.status == 431
    assert answer.json()["error"]["code"] in ("http1.headers_too_large",
                                              "http1.too_many_headers")
    assert reached(gw, rid) is None
    assert send(gw, "/openai/v1/chat/completions")[0].status == 200   # Envoy is fine


@pytest.mark.parametrize("headers", [
    [many(n) for n in range(MAX_COUNT - 20, MAX_COUNT + 2)],
    [filler(MAX_KB * 1024 - d) for d in range(800, -120, -40)],
], ids=["count", "bytes"])
def test_around_the_limits_every_answer_is_a_forward_or_a_431(
        gw: Gateway, headers: list[list[tuple[str, str]]]) -> None:
    """Near the limits Envoy's own headers and the gateway's push the request over: that
    used to be Envoy's bare 500 (header_mutation_result_exceeds_limit)."""
    seen = set()
    for extra in headers:
        answer, rid = send(gw, "/openai/v1/chat/completions", headers=extra)
        assert answer.status in (200, 431), (len(extra), answer.status, answer.body)
        if answer.status == 431:
            assert reached(gw, rid) is None
            error = answer.json()["error"]
            seen.add(error.get("code") or error["type"])
            if error["type"] == "invalid_request_error":     # the processor's, OpenAI's format
                assert error["message"].startswith("request headers too large")
                assert gw.access_log(rid)["details"] == "extproc_request_headers_too_large"
        else:
            assert reached(gw, rid) is not None
            seen.add(200)
    # all three answers occur: forwarded, the processor's 431, the codec's 431
    assert len(seen) == 3, seen


def test_a_large_bearer_token_gets_the_processors_401(gw: Gateway) -> None:
    token = "t" * (80 * 1024)                    # under Envoy's 96 KiB, over auth's 16 KiB
    answer, rid = send(gw, "/keyed/v1/chat/completions",
                       headers=[("authorization", f"Bearer {token}")])
    assert answer.status == 401
    assert "larger than 16384 bytes" in answer.json()["error"]["message"]
    assert reached(gw, rid) is None
    answer, _ = send(gw, "/keyed/v1/chat/completions",
                     headers=[("authorization", f"Bearer {API_KEY}")])
    assert answer.status == 200


CURL = shutil.which("curl")


def curl_h2(gw: Gateway, tmp_path: Path, headers: list[tuple[str, str]], body: bool = True
            ) -> tuple[int | None, str, str]:
    """POST over HTTP/2 (prior knowledge) with curl: (status or None, body, request id).
    Without `body`, the POST has none: a refusal of the headers then cannot race the upload
    (Envoy resets a stream it answered while the client still sends, and curl reports the
    reset instead of the answer)."""
    rid = uuid.uuid4().hex
    lines = [f"{k}: {v}" for k, v in [("x-request-id", rid), *headers]]
    (tmp_path / "headers.txt").write_text("\n".join(lines) + "\n")
    data = ["-d", json.dumps(CHAT)] if body else ["-X", "POST"]
    r = subprocess.run([CURL, "-sS", "--http2-prior-knowledge", "--retry", "0",
                        "-H", "content-type: application/json", "-H", f"@{tmp_path}/headers.txt",
                        *data, "-w", "\n%{http_code}",
                        f"{gw.url}/openai/v1/chat/completions"],
                       capture_output=True, text=True, timeout=60)
    body, _, code = r.stdout.rpartition("\n")
    if not code.isdigit() or not int(code):
        body = f"{body}\ncurl: {r.stderr.strip()}"   # why no status, for the failure message
    return (int(code) or None) if code.isdigit() else None, body, rid


@pytest.mark.skipif(CURL is None, reason="needs curl for HTTP/2")
def test_http2_too_many_or_too_large_headers_are_refused_and_never_forwarded(
        gw: Gateway, tmp_path: Path) -> None:
    status, body, rid = curl_h2(gw, tmp_path, many(MAX_COUNT - 10), body=False)
    assert status == 431, body
    assert json.loads(body)["error"]["message"].startswith(
        "request headers too large")
    assert reached(gw, rid) is None
    # past the codec's limits Envoy refuses the HTTP/2 stream (RST_STREAM): no 431 there
    for headers in (many(MAX_COUNT + 50), filler(MAX_KB * 1024 + 2000, width=100_000)):
        status, _, rid = curl_h2(gw, tmp_path, headers)
        assert status is None
        assert reached(gw, rid) is None
    status, _, _ = curl_h2(gw, tmp_path, [])
    assert status == 200


# --- access log --------------------------------------------------------------------------

def test_the_access_logs_ratelimit_field_is_a_json_summary(gw: Gateway) -> None:
    client = [("x-test-client", uuid.uuid4().hex)]
    rids = [send(gw, "/limited/v1/chat/completions", headers=client)[1] for _ in range(6)]
    first = gw.server_access_line(rids[0])["ratelimit"]
    assert first == {"decision": "allowed", "limit": "per-client", "remaining_requests": 4}
    last = gw.server_access_line(rids[-1])
    assert last["status"] == 429
    assert last["ratelimit"] == {"decision": "limited", "limit": "per-client",
                                 "remaining_requests": 0}


# --- upstream TLS ------------------------------------------------------------------------

def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class CA:
    """A throwaway certificate authority."""

    def __init__(self, name: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(minutes=5))
                     .not_valid_after(now + datetime.timedelta(days=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                     .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                                  False, False), True)
                     .sign(self.key, hashes.SHA256()))

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, directory: Path, *names: str) -> tuple[Path, Path]:
        """A server certificate for `names` (DNS SANs): (cert chain file, key file)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder().subject_name(_name(names[0]))
                .issuer_name(self.cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                               False)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
                .sign(self.key, hashes.SHA256()))
        stem = directory / uuid.uuid4().hex
        chain, key_file = stem.with_suffix(".crt"), stem.with_suffix(".key")
        chain.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + self.pem())
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return chain, key_file


class TlsFront:
    """A TLS server in front of the mock provider, presenting one certificate. It counts the
    handshakes that completed (only those connections could carry a request) and records the
    SNI each client sent."""

    def __init__(self, chain: Path, key: Path, target: int) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(chain, key)
        self.ctx.sni_callback = lambda sock, name, ctx: self.sni.append(name)  # type: ignore
        self.target = target
        self.sni: list[str | None] = []
        self.handshakes = 0
        self.refused = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            tls = self.ctx.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            self.refused += 1
            conn.close()
            return
        self.handshakes += 1
        up = socket.create_connection(("127.0.0.1", self.target))
        threading.Thread(target=_pump, args=(up, tls), daemon=True).start()
        _pump(tls, up)

    def close(self) -> None:
        self.sock.close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.close()
            except OSError:
                pass


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory, mock: Mock
        ) -> Iterator[tuple[Gateway, dict[str, TlsFront]]]:
    tmp = tmp_path_factory.mktemp("tls")
    trusted, stranger = CA("hygiene trusted CA"), CA("hygiene unknown CA")
    (tmp / "ca.pem").write_bytes(trusted.pem())
    fronts = {
        # route -> the certificate its upstream presents
        "openai": TlsFront(*trusted.issue(tmp, "api.upstream.test"), mock.port),
        "anthropic": TlsFront(*trusted.issue(tmp, "other.upstream.test"), mock.port),
        "gemini": TlsFront(*trusted.issue(tmp, "*.upstream.test"), mock.port),
        "azure": TlsFront(*stranger.issue(tmp, "api.upstream.test"), mock.port),
    }
    hosts = {"openai": "api.upstream.test", "anthropic": "api.upstream.test",
             "gemini": "gemini.upstream.test", "azure": "api.upstream.test"}
    upstreams = {p: mock.url for p in PROVIDERS} | {
        p: f"https://{hosts[p]}:{front.port}" for p, front in fronts.items()}

    def resolve_locally(doc: dict[str, Any]) -> None:
        # the names stay in SNI and the certificate check; the addresses are this machine's
        for cluster in doc["static_resources"]["clusters"]:
            if cluster["name"] in fronts:
                endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
                endpoint["endpoint"]["address"]["socket_address"]["address"] = "127.0.0.1"

    gateway = Gateway(tmp, {"routes": [{"name": p, "provider": p} for p in PROVIDERS]},
                      mock=mock, adjust=resolve_locally,
                      settings={"upstreams": upstreams, "ca_bundle": str(tmp / "ca.pem")})
    yield gateway, fronts
    gateway.close()
    for front in fronts.values():
        front.close()


@pytest.mark.parametrize(("route", "path", "body", "sni"), [
    ("openai", "/openai/v1/chat/completions", CHAT, "api.upstream.test"),
    ("gemini", "/gemini/v1beta/models/gemini-2.5-flash:generateContent", GENERATE,
     "gemini.upstream.test"),   # a wildcard certificate covers the name, as Google's do
])
def test_an_upstream_certificate_naming_the_host_is_accepted(
        tls: tuple[Gateway, dict[str, TlsFront]], route: str, path: str,
        body: dict[str, Any], sni: str) -> None:
    gw, fronts = tls
    answer, rid = send(gw, path, body)
    assert answer.status == 200, answer.body
    assert reached(gw, rid) is not None
    assert fronts[route].handshakes >= 1 and sni in fronts[route].sni


@pytest.mark.parametrize(("route", "path", "body"), [
    ("anthropic", "/anthropic/v1/messages", MESSAGES),       # trusted CA, another name
    ("azure", "/azure/openai/deployments/d/chat/completions?api-version=2024-10-21",
     CHAT),                                                   # the right name, unknown CA
])
def test_an_upstream_certificate_for_another_name_or_from_an_unknown_ca_is_refused(
        tls: tuple[Gateway, dict[str, TlsFront]], route: str, path: str,
        body: dict[str, Any]) -> None:
    gw, fronts = tls
    answer, rid = send(gw, path, body)
    assert answer.status == 503, answer.body
    assert "CERTIFICATE_VERIFY_FAILED" in answer.body.decode()
    assert fronts[route].handshakes == 0 and fronts[route].refused >= 1
    assert reached(gw, rid) is None
    assert "UF" in gw.access_log(rid)["flags"]
