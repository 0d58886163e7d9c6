"""Where a JWT provider's keys come from: a file, an inline JWKS, or a remote JWKS URL.

`RemoteJWKS` holds the cache policy and no sockets: it is given a `fetch(url, timeout)`
coroutine (the shared HTTP client in production, a fake in unit tests) and a clock.

* The first request that needs keys fetches them (concurrent requests share one fetch).
* Keys older than `refresh_s` are refreshed in the background; requests keep using them.
* A token with an unknown `kid` triggers a refetch at most once per `min_refetch_s`, so
  a flood of forged kids cannot hammer the endpoint; key rotation is picked up at once.
* A failed fetch keeps the last good keys. With no keys ever fetched, requests fail with a
  401 that says only that the issuer's signing keys are unavailable (never the URL, the
  host or the error: those go to the log and the admin /stats, the URL's userinfo and query
  redacted), and the next fetch is tried no sooner than `min_refetch_s` later.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit, urlunsplit

from .. import filewatch
from .devkey import without_dev_key
from .keys import Key, KeySet, KeySetError
from .verify import AuthError

log = logging.getLogger("extproc.auth")

Fetch = Callable[[str, float], Awaitable[bytes]]


class StaticKeys:
    """Keys loaded once, from a file or inline config (a config reload re-reads the file)."""

    def __init__(self, keyset: KeySet) -> None:
        self.keyset = keyset
        if keyset.skipped:    # a weak RSA key, a private one, ...: the operator should know
            log.warning("JWKS: skipped %s", "; ".join(keyset.skipped))

    @classmethod
    def from_file(cls, path: str | Path) -> StaticKeys:
        """The keys in a JWKS file, read now. The file is noted as one the config depends on
        (`filewatch`): `--watch-config` reloads when it changes, SIGHUP always does; a reload
        that cannot read it is refused and the running keys stay."""
        filewatch.note(path)
        try:
            text = Path(path).read_bytes()
        except OSError as exc:
            raise KeySetError(f"cannot read {path}: {exc.strerror}") from exc
        return cls(KeySet.parse(text))

    async def candidates(self, kid: str | None, alg: str) -> list[Key]:
        return self.keyset.candidates(kid, alg)


class RemoteJWKS:
    """A JWKS URL with caching, background refresh and rate-limited refetch."""

    def __init__(self, url: str, fetch: Fetch, *, timeout_s: float = 2.0,
                 refresh_s: float = 300.0, min_refetch_s: float = 15.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.shown_url = redact_url(url)     # for logs and /stats
        self.timeout_s = timeout_s
        self.refresh_s = refresh_s
        self.min_refetch_s = min_refetch_s
        self.fetches = 0                 # attempts, for tests and stats
        self._fetch = fetch
        self._clock = clock
        self._keys: KeySet | None = None
        self._body: bytes | None = None    # the document the keys were read from
        self._fetched_at = 0.0           # last success
        self._attempted_at: float | None = None   # last attempt, success or not
        self._error: str | None = None   # why the last attempt failed
        self._inflight: asyncio.Task[None] | None = None

    @property
    def keyset(self) -> KeySet | None:
        return self._keys

    @property
    def last_error(self) -> str | None:
        return self._error

    def warm(self) -> None:
        """Start fetching now (at startup) if no keys are held; never blocks."""
        if self._keys is None and self._may_attempt(self._clock()):
            self._start()

    async def candidates(self, kid: str | None, alg: str) -> list[Key]:
        now = self._clock()
        if self._keys is None:
            if self._may_attempt(now):
                await self._refresh()
            if self._keys is None:
                # why (the URL, an internal host, a TLS error) is the operator's to read in
                # the log and /stats, not every client's who sends a JWT-shaped token
                raise AuthError(UNAVAILABLE)
        elif now - self._fetched_at >= self.refresh_s and self._may_attempt(now):
            self._start()                # stale: refresh in the background, serve old keys
        keys = self._keys.candidates(kid, alg)
        if not keys and kid is not None and not self._keys.has_kid(kid) \
                and self._may_attempt(self._clock()):
            await self._refresh()       # unknown kid: the issuer may have rotated its keys
            keys = self._keys.candidates(kid, alg)
        return keys

    def tick(self) -> None:
        """Start a background refresh if the keys are stale; never blocks (a cached
        token's check calls it, so a retired key goes even when every token is cached)."""
        now = self._clock()
        if self._keys is not None and now - self._fetched_at >= self.refresh_s \
                and self._may_attempt(now):
            self._start()

    def _may_attempt(self, now: float) -> bool:
        if self._inflight is not None:
            return True                  # joining a fetch in flight costs nothing
        return self._attempted_at is None or now - self._attempted_at >= self.min_refetch_s

    def _start(self) -> asyncio.Task[None]:
        if self._inflight is None:
            self._attempted_at = self._clock()
            self._inflight = asyncio.get_running_loop().create_task(self._run())
        return self._inflight

    async def _refresh(self) -> None:
        # shielded: a request that goes away must not cancel the fetch others wait for
        await asyncio.shield(self._start())

    async def _run(self) -> None:
        self.fetches += 1
        try:
            body = await self._fetch(self.url, self.timeout_s)
            keys = without_dev_key(KeySet.parse(body))
            if not keys:
                raise KeySetError("the JWKS has no usable signing keys")
        except Exception as exc:  # network errors, bad JSON, empty sets: keep the old keys
            self._error = f"fetching {self.shown_url} failed: {_describe(exc, self._redact)}"
            log.warning("JWKS %s (keeping %s)", self._error,
                        f"{len(self._keys)} cached keys" if self._keys else "no keys")
        else:
            if keys.skipped:
                log.warning("JWKS %s: skipped %s", self.shown_url, "; ".join(keys.skipped))
            if body != self._body or self._keys is None:
                # a new set only when the document changed: the tokens cached against the
                # old set are verified again (a retired key's are then refused)
                self._keys, self._body = keys, body
            self._fetched_at, self._error = self._clock(), None
        finally:
            self._inflight = None

    def _redact(self, text: str) -> str:
        """An error's text with the URL's secrets (userinfo, query) replaced, wherever the
        error quotes them (an HTTP client's errors quote the URL, in its spelling or ours)."""
        secrets = {self.url: self.shown_url}
        try:
            parts = urlsplit(self.url)
        except ValueError:
            parts = None
        if parts is not None:
            hidden = [parts.netloc.rpartition("@")[0], parts.query, parts.fragment,
                      *(v for vs in parse_qs(parts.query).values() for v in vs)]
            for value in hidden:
                for spelling in (value, unquote(value), quote(unquote(value), safe="")):
                    if spelling:
                        secrets.setdefault(spelling, "***")
        for secret, shown in sorted(secrets.items(), key=lambda kv: -len(kv[0])):
            text = text.replace(secret, shown)
        return text


#: what a client is told when its issuer's keys could never be fetched
UNAVAILABLE = "the issuer's signing keys are unavailable"


def redact_url(url: str) -> str:
    """A URL fit for a log line: its userinfo (`user:pass@`), query and fragment, which may
    carry credentials, replaced by `***`."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
    except ValueError:
        return "<unreadable URL>"
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "***" if parts.query else "",
                       "***" if parts.fragment else ""))


def _describe(exc: BaseException, redact: Callable[[str], str]) -> str:
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timed out"
    text = redact(str(exc) or type(exc).__name__)   # before cutting: no secret half-shown
    return text if len(text) < 200 else text[:200] + "..."


def describe_source(source: Any) -> dict[str, Any]:
    """A small status dict for the admin /stats page."""
    if isinstance(source, RemoteJWKS):
        return {"url": source.shown_url, "keys": len(source.keyset or ()),
                "fetches": source.fetches, "error": source.last_error}
    if isinstance(source, StaticKeys):
        return {"keys": len(source.keyset)}
    return {}
