"""`Authenticate`: the built-in route policy that checks who the client is and swaps the
client's credential for the provider's.

Runs first on a route, in the request-headers phase only (it never asks for a body). A JWT is
verified by the route's providers; anything else presented is looked up as an API key. The
outcome is an `Identity` in `ex.state["identity"]` (what rate limits key on), dynamic metadata
(`subject`, `auth`, forwarded `claims`) and, optionally, claims forwarded as request headers.
Verified tokens are cached (bounded LRU keyed by the token's SHA-256, never past `exp`).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..policy import Policy, Reject
from .apikeys import ApiKeyStore
from .credentials import (
    ANTHROPIC_VERSION,
    CLIENT_CREDENTIAL_HEADERS,
    PROVIDER_HEADER,
    UpstreamCredential,
)
from .verify import AuthError, JWTProvider, peek_issuer, read_header, scopes_of

if TYPE_CHECKING:
    from ..exchange import Exchange

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_QUOTED_UNSAFE = re.compile(r'[^\x20-\x7e]|["\\]')
MAX_FORWARDED_VALUE = 4096


@dataclass(frozen=True)
class Identity:
    """Who made the request, however they proved it."""

    subject: str
    method: str                  # "jwt" or "api_key"
    source: str                  # the JWT provider's name or the API key's id
    claims: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.method}:{self.source}"


@dataclass(frozen=True)
class _Grant:
    """An identity with what it adds to each request, computed once per cached identity."""

    identity: Identity
    headers: Mapping[str, str]        # forwarded claims, by header name
    metadata: Mapping[str, Any]


@dataclass(frozen=True)
class RouteAuth:
    """Route config `auth:`."""

    jwt: tuple[JWTProvider, ...] = ()
    api_keys: ApiKeyStore | None = None
    header: str | None = None          # None: Authorization Bearer, else the provider's header
    scopes: tuple[str, ...] = ()
    claims: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    forward_claims: Mapping[str, str] = field(default_factory=dict)   # claim -> header
    max_token_bytes: int = 16384
    cache_size: int = 10000
    realm: str = "llm-gateway"


class Authenticate(Policy):
    """Client authentication (optional) and upstream credential injection (optional)."""

    def __init__(self, provider: str, auth: RouteAuth | None,
                 credential: UpstreamCredential | None, clock: Any = time.time) -> None:
        super().__init__({})
        self.provider = provider
        self.auth = auth
        self.credential = credential
        self.clock = clock
        self._cache: OrderedDict[bytes, tuple[_Grant, float]] = OrderedDict()
        self._key_grants: dict[str, _Grant] = {}
        self.stats = {"accepted": 0, "rejected": 0, "cache_hits": 0}
        native = PROVIDER_HEADER[provider][0]
        self._native = native if native != "authorization" else None
        forwarded = tuple(auth.forward_claims.values()) if auth else ()
        # headers that must never reach the upstream from the client: its credentials and
        # anything it could use to spoof a forwarded claim
        self._strip = tuple(dict.fromkeys((*CLIENT_CREDENTIAL_HEADERS, *forwarded,
                                           *((auth.header,) if auth and auth.header else ()))))

    async def on_request_headers(self, ex: Exchange) -> None:
        headers = ex.request_headers
        inject = self.credential.headers() if self.credential else {}
        if self.auth is not None:
            try:
                grant = await self._authenticate(headers)
                self._authorize(grant.identity)
            except AuthError as exc:
                self.stats["rejected"] += 1
                raise self._reject(exc) from None
            self.stats["accepted"] += 1
            ex.state["identity"] = grant.identity
            ex.metadata.update(grant.metadata)
            inject.update(grant.headers)
        if self.provider == "anthropic" and self.credential and \
                "anthropic-version" not in headers:
            inject["anthropic-version"] = ANTHROPIC_VERSION
        for name in self._strip:
            if name in headers and name not in inject:
                ex.remove_request_header(name)
        for name, value in inject.items():
            ex.set_request_header(name, value)

    def _grant(self, identity: Identity) -> _Grant:
        """What an identity adds to every request: forwarded claims and metadata."""
        assert self.auth is not None
        forwarded = self._forwarded(identity)
        metadata: dict[str, Any] = {"subject": identity.subject, "auth": identity.label}
        if forwarded:
            metadata["claims"] = forwarded
        return _Grant(identity, {self.auth.forward_claims[c]: v for c, v in forwarded.items()},
                      metadata)

    # --- who is it? ------------------------------------------------------------------------
    async def _authenticate(self, headers: Mapping[str, str]) -> _Grant:
        assert self.auth is not None
        token = self._credential(headers)
        if len(token) > self.auth.max_token_bytes:
            raise AuthError(f"credential is larger than {self.auth.max_token_bytes} bytes")
        if self.auth.jwt and _looks_like_jwt(token):
            return await self._verify_jwt(token)
        if self.auth.api_keys is not None:
            key = self.auth.api_keys.lookup(token)
            if key is None:
                raise AuthError("API key is not valid")
            if key.revoked:
                raise AuthError("API key has been revoked")
            grant = self._key_grants.get(key.id)
            if grant is None:
                grant = self._key_grants[key.id] = self._grant(
                    Identity(key.subject, "api_key", key.id, key.claims))
            return grant
        raise AuthError("token is malformed (expected a JWT: three dot-separated parts)")

    def _credential(self, headers: Mapping[str, str]) -> str:
        assert self.auth is not None
        if self.auth.header is not None:
            value = headers.get(self.auth.header, "").strip()
            if value[:7].lower() == "bearer ":
                value = value[7:].strip()
            if not value:
                raise AuthError(f"missing credential (send it in the {self.auth.header} "
                                "header)")
            return value
        value = headers.get("authorization")
        if value is not None:
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise AuthError("the Authorization header must be 'Bearer <token>'")
            return token.strip()
        if self._native is not None and (value := headers.get(self._native, "").strip()):
            return value
        where = "Authorization: Bearer" + (f" or {self._native}" if self._native else "")
        raise AuthError(f"missing credential (send it as {where})")

    async def _verify_jwt(self, token: str) -> _Grant:
        assert self.auth is not None
        digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        now = self.clock()
        hit = self._cache.get(digest)
        if hit is not None:
            if now < hit[1]:
                self._cache.move_to_end(digest)
                self.stats["cache_hits"] += 1
                return hit[0]
            del self._cache[digest]
        header = read_header(token)
        provider = self._provider_for(token)
        verified = await provider.verify(token, header)
        claims = verified.claims
        sub = claims.get("sub")
        grant = self._grant(Identity(sub if isinstance(sub, str) else "", "jwt", provider.name,
                                     claims))
        if verified.exp is not None and self.auth.cache_size:
            self._cache[digest] = (grant, verified.exp)
            if len(self._cache) > self.auth.cache_size:
                self._cache.popitem(last=False)
        return grant

    def _provider_for(self, token: str) -> JWTProvider:
        assert self.auth is not None
        providers = self.auth.jwt
        if len(providers) == 1:
            return providers[0]
        iss = peek_issuer(token)
        for p in providers:
            if p.issuer == iss:
                return p
        raise AuthError("token issuer is not accepted")

    # --- may it use this route? ------------------------------------------------------------
    def _authorize(self, identity: Identity) -> None:
        assert self.auth is not None
        if self.auth.scopes:
            missing = [s for s in self.auth.scopes if s not in scopes_of(identity.claims)]
            if missing:
                raise AuthError(f"missing scope: {' '.join(missing)}", status=403,
                                scope=" ".join(self.auth.scopes))
        for claim, allowed in self.auth.claims.items():
            value = identity.claims.get(claim)
            values = value if isinstance(value, list) else [value]
            if not any(v in allowed for v in values if v is not None):
                raise AuthError(f"claim {claim!r} does not allow this route", status=403)

    def _forwarded(self, identity: Identity) -> dict[str, str]:
        assert self.auth is not None
        out: dict[str, str] = {}
        for claim in self.auth.forward_claims:
            value = identity.claims.get(claim)
            if claim == "sub" and value is None:
                value = identity.subject or None
            if value is not None:
                out[claim] = header_value(value)
        return out

    def _reject(self, exc: AuthError) -> Reject:
        assert self.auth is not None
        desc = _QUOTED_UNSAFE.sub("'", exc.message)
        if exc.status == 403:
            scope = f', scope="{exc.scope}"' if exc.scope else ""
            challenge = (f'Bearer realm="{self.auth.realm}", error="insufficient_scope"'
                         f'{scope}, error_description="{desc}"')
            return Reject(403, f"forbidden: {exc.message}", headers={
                "www-authenticate": challenge}, details="extproc_auth_forbidden")
        challenge = (f'Bearer realm="{self.auth.realm}", error="invalid_token", '
                     f'error_description="{desc}"')
        return Reject(401, f"authentication failed: {exc.message}",
                      headers={"www-authenticate": challenge}, details="extproc_auth_invalid")


def _looks_like_jwt(token: str) -> bool:
    return token.startswith("eyJ") and token.count(".") == 2


def header_value(value: Any) -> str:
    """A claim as a header value: lists joined with ',', other non-strings as JSON; control
    characters (CR, LF, NUL and the rest, not tab) become spaces; length capped."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        text = ",".join(value)
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    text = _CONTROL.sub(" ", text)[:MAX_FORWARDED_VALUE]
    # lone surrogates (valid in JSON, not in UTF-8) cannot be written to a header
    return text.encode("utf-8", "replace").decode("utf-8")
