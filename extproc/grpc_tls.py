"""TLS, and mutual TLS, on the processor's gRPC port (an adapter at the edge).

The server's replies to Envoy carry the provider key it injects, so whoever can open a
`Process` stream to the port with a valid client credential can read that key. A unix socket
(`--unix`, the sidecar) is guarded by the file system; a TCP port is guarded by nothing but
the network, unless it asks every caller for a client certificate: `--tls-cert`,
`--tls-key` and `--tls-client-ca` make the port speak TLS and refuse, in the handshake, any
caller whose certificate does not chain to that CA (Envoy's cluster presents one: see
`envoy_config.ExtprocTls`). TLS without a client CA encrypts but lets anyone in.

The files are read at start (a missing or broken one stops the server with a clear error)
and read again at the next handshake after any of them changes (cert-manager and Kubernetes
secret volumes rotate them in place): a new pair that does not load keeps the last good
one, logged. Connections already open keep the certificates they were made with.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

import grpc

log = logging.getLogger("extproc.server")


class TlsError(ValueError):
    """A TLS file that cannot be used, said plainly."""


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: the server's certificate chain and key, and the CA (bundle) a caller's
    certificate must chain to (None: no client certificate asked for)."""

    cert: str
    key: str
    client_ca: str | None = None

    def paths(self) -> tuple[str, ...]:
        return (self.cert, self.key) + ((self.client_ca,) if self.client_ca else ())


def _read(path: str, what: str, marker: bytes) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise TlsError(f"{what} {path}: {exc.strerror or exc}") from None
    if marker not in data:
        raise TlsError(f"{what} {path} holds no PEM {marker.decode()} block")
    return data


def load(files: TlsFiles) -> grpc.ServerCertificateConfiguration:
    """The files as gRPC's certificate configuration; `TlsError` naming the file that is
    missing or holds no PEM of the kind it should (gRPC itself would only fail later, at
    the first handshake, with nothing said)."""
    cert = _read(files.cert, "--tls-cert", b"-----BEGIN CERTIFICATE-----")
    key = _read(files.key, "--tls-key", b"PRIVATE KEY-----")
    ca = _read(files.client_ca, "--tls-client-ca", b"-----BEGIN CERTIFICATE-----") \
        if files.client_ca else None
    _check_pair(files, cert, key)
    return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)


def _check_pair(files: TlsFiles, cert: bytes, key: bytes) -> None:
    """The key must be the certificate's (gRPC would accept the pair and fail every
    handshake); the certificate must parse."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    try:
        public = x509.load_pem_x509_certificate(cert).public_key()
    except ValueError as exc:
        raise TlsError(f"--tls-cert {files.cert}: not a certificate ({exc})") from None
    try:
        private = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError) as exc:
        raise TlsError(f"--tls-key {files.key}: not an unencrypted private key ({exc})") \
            from None
    raw = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    if private.public_key().public_bytes(enc, raw) != public.public_bytes(enc, raw):
        raise TlsError(f"--tls-key {files.key} is not the key of --tls-cert {files.cert}")


def _stamp(files: TlsFiles) -> tuple[tuple[int, int, int], ...]:
    out = []
    for path in files.paths():
        try:
            st = os.stat(path)
            out.append((st.st_ino, st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((0, 0, 0))
    return tuple(out)


def fetcher(files: TlsFiles, seen: tuple[tuple[int, int, int], ...]
            ) -> Callable[[], grpc.ServerCertificateConfiguration | None]:
    """gRPC's certificate fetcher, called before each handshake: a new configuration when
    the files changed since `seen` (their stamp when last read), else None (keep the
    current one)."""

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        nonlocal seen
        stamp = _stamp(files)
        if stamp == seen:
            return None
        seen = stamp   # a broken set is tried again only when the files change again
        try:
            config = load(files)
        except TlsError as exc:
            log.error("TLS files changed but cannot be used, keeping the last good ones: %s",
                      exc)
            return None
        log.info("TLS files changed: new handshakes use them")
        return config
    return fetch


def server_credentials(files: TlsFiles) -> grpc.ServerCredentials:
    """Credentials for `add_secure_port`: the files now, re-read when they change; a client
    certificate required when `files.client_ca` is set."""
    seen = _stamp(files)   # before reading: a change while reading is read again
    initial = load(files)
    return grpc.dynamic_ssl_server_credentials(
        initial, fetcher(files, seen), require_client_authentication=files.client_ca is not None)
