"""The `jwks:` part of a JWT provider's config: where its signing keys come from, validated
with every error named by its key path.

    jwks: {file: jwks.json}                         # or {inline: {keys: [...]}}
    jwks: {url: https://idp.example.com/.well-known/jwks.json,
           timeout_s: 2, refresh_s: 300, min_refetch_s: 15}

A file or inline set must hold at least one usable public signing key. A URL is https, or
http only to a loopback host (keys decide who may sign tokens); remote sources are kept by
their settings, so a config reload keeps the keys already fetched, and `warm_up` starts
fetching every one of them.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .. import httpclient
from ..schema import Checker, join
from .jwks import RemoteJWKS, StaticKeys, redact_url
from .keys import KeySet, KeySetError

#: remote JWKS sources by settings, so a config reload keeps the keys already fetched
_REMOTE: dict[tuple[str, float, float, float], RemoteJWKS] = {}


def parse_jwks(c: Checker, raw: Any, path: str, base: Path) -> Any:
    """The key source a `jwks:` mapping names (a `StaticKeys`, or a `RemoteJWKS` shared by
    every provider and reload with the same settings), or None after an error."""
    d = c.mapping(raw, path, ("file", "inline", "url", "timeout_s", "refresh_s",
                              "min_refetch_s"))
    given = [k for k in ("file", "inline", "url") if k in d]
    if len(given) != 1:
        c.error(path, "needs exactly one of: file, inline, url")
        return None
    try:
        if "inline" in d:
            return StaticKeys(_nonempty(KeySet.parse(d["inline"])))
        if "file" in d:
            f = c.string(d, "file", path)
            if f is None:
                return None
            src = StaticKeys.from_file(base / f)
            _nonempty(src.keyset)
            return src
    except KeySetError as exc:
        c.error(join(path, given[0]), f"unusable JWKS: {exc}")
        return None
    url = c.string(d, "url", path)
    if url is not None:
        problem = _jwks_url_problem(url)
        if problem is not None:
            c.error(join(path, "url"), problem)
            return None
    # floors (found by review): a timeout of 0 is none at all (a hung endpoint then holds
    # every request, and the refresh for good); no refetch floor lets forged kids fetch the
    # JWKS once each
    timeout = float(c.number(d, "timeout_s", path, 2.0, minimum=0.01))
    refresh = float(c.number(d, "refresh_s", path, 300.0, minimum=1))
    refetch = float(c.number(d, "min_refetch_s", path, 15.0, minimum=0.1))
    if url is None:
        return None
    key = (url, timeout, refresh, refetch)
    if key not in _REMOTE:
        _REMOTE[key] = RemoteJWKS(url, httpclient.fetch_bytes, timeout_s=timeout,
                                  refresh_s=refresh, min_refetch_s=refetch)
    return _REMOTE[key]


def _jwks_url_problem(url: str) -> str | None:
    """Why a JWKS URL cannot be used, or None. Keys decide who may sign tokens: they come
    over https, or over http only from this host (127.0.0.0/8, ::1, localhost), where no
    network sits between the gateway and the issuer."""
    if not url.startswith(("http://", "https://")):
        return f"expected an https URL, got {redact_url(url)!r}"
    try:
        host = urlsplit(url).hostname
    except ValueError:
        host = None
    if not host:
        return f"expected an https URL with a host, got {redact_url(url)!r}"
    if url.startswith("http://") and not _loopback(host):
        return ("must be https: keys fetched over http can be swapped on the way (http is "
                f"accepted only from a loopback host), got {redact_url(url)!r}")
    return None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def warm_up() -> None:
    """Start fetching every remote JWKS the loaded configs name (call inside the loop)."""
    for source in _REMOTE.values():
        source.warm()


def _nonempty(keyset: KeySet) -> KeySet:
    if not keyset:
        detail = f" ({'; '.join(keyset.skipped)})" if keyset.skipped else ""
        raise KeySetError(f"no usable public signing keys{detail}")
    return keyset
