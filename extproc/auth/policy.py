"""`Authenticate`: the built-in route policy that checks who the client is and swaps the
client's credential for the provider's.

Runs first on a route, in the request-headers phase only (it never asks for a body). A JWT is
verified by the route's providers; anything else presented is looked up as an API key. The
outcome is an `Identity` in `ex.state["identity"]` (what rate limits key on), dynamic metadata
(`subject`, `auth`, forwarded `claims`) and, optionally, claims forwarded as request headers.
Verified tokens are cached (bounded LRU keyed by the token's SHA-256, never past `exp`, nor
past a change of their issuer's key set: a key taken out of the JWKS ends its tokens).

Subjects are namespaced by where they come from, so that one source cannot speak for
another's users: a JWT's is `jwt:<provider name>:<sub>` and an API key's `key:<subject>` (the
key's subject defaults to its id). A JWT provider's or an API key's `subject_namespace`
replaces the prefix (`corp` makes `corp:<sub>`; `""` keeps the bare subject): sources given
the same namespace are the same people, sharing rate-limit buckets and forwarded identity.
`Identity.subject` and the `sub` of `Identity.claims` both hold the namespaced subject, so
everything that reads the subject (the `subject` and `claim:sub` limit descriptors,
`forward_claims` of `sub`, the `subject` and `claims` metadata, the access log, guard
webhooks, route `claims: {sub: [...]}` checks) sees the same value. A route's `claims:`
compares a claim with its allowed values as JSON values (`json_equal`): `true` is not `1`,
`false` not `0`, a string not a number; a claim that is an array passes when one of its
items is allowed.

Where the gateway swaps credentials, the client's are removed: the credential headers, and
credential parameters of the URL query (see `querycreds`), the latter by rewriting `:path`.
`ex.request_headers` follows, so later policies read what goes upstream: the path, without
the removed headers, with the forwarded claims (never the injected credential). Where the
provider's credential is injected, the reply's headers that name its account
(`openai-organization`, `openai-project`, `anthropic-organization-id`) are removed. On a
Gemini route that accepts API keys (and names no `header:`), a `key=` (or Google's alias
`$key=`) query parameter is accepted as the gateway API key when no credential header is
sent, as Gemini's REST examples do; it is only ever looked up as an API key, never verified
as a JWT, and two different values are refused.
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

from ..policy import BodyTransform, Policy, Reject
from .apikeys import ApiKeyStore
from .credentials import (
    ANTHROPIC_VERSION,
    CLIENT_CREDENTIAL_HEADERS,
    CREDENTIAL_SCOPE_HEADERS,
    PROVIDER_HEADER,
    USER_SESSION_HEADERS,
    USER_SESSION_PREFIXES,
    UpstreamCredential,
    credential_transform,
    fold_header,
    spellings_of,
    strip_account_reply_headers,
)
from .querycreds import strip_query_credentials
from .verify import AuthError, JWTProvider, peek_issuer, read_header, scopes_of

if TYPE_CHECKING:
    from ..context import Context

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_QUOTED_UNSAFE = re.compile(r'[^\x20-\x7e]|["\\]')
MAX_FORWARDED_VALUE = 4096


#: providers whose clients may send the gateway API key as the `key` query parameter
QUERY_KEY_PROVIDERS = ("gemini",)


def namespaced(namespace: str, subject: str) -> str:
    """A subject as the gateway names it: `<namespace>:<subject>`, bare if namespace is ''."""
    return f"{namespace}:{subject}" if namespace else subject


@dataclass(frozen=True)
class Identity:
    """Who made the request, however they proved it."""

    subject: str                 # namespaced: "jwt:corp:alice", "key:ci-bot" (see above)
    method: str                  # "jwt" or "api_key"
    source: str                  # the JWT provider's name or the API key's id
    claims: Mapping[str, Any] = field(default_factory=dict)   # `sub` == subject

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
        #: a provider's 401 to the injected key is read (`response_transform`)
        self.needs_response_body = credential is not None
        self.clock = clock
        self._cache: OrderedDict[bytes, tuple[_Grant, float, Any, Any]] = OrderedDict()
        self._key_grants: dict[str, _Grant] = {}
        self.stats = {"accepted": 0, "rejected": 0, "cache_hits": 0}
        native = PROVIDER_HEADER[provider][0]
        self._native = native if native != "authorization" else None
        forwarded = tuple(auth.forward_claims.values()) if auth else ()
        # headers that must never reach the upstream from the client: its credentials and
        # anything it could use to spoof a forwarded claim, in any spelling with `_` for `-`
        # (`x_api_key`, `openai_organization`, `x_gateway_subject`), which Envoy passes on
        # and a CGI-style upstream (WSGI, LiteLLM) reads as the same header
        self._strip = frozenset(fold_header(h) for h in (
            *CLIENT_CREDENTIAL_HEADERS, *USER_SESSION_HEADERS, *forwarded,
            *((auth.header,) if auth and auth.header else ()),
            *(CREDENTIAL_SCOPE_HEADERS if credential else ())))

    async def on_request_headers(self, ex: Context) -> None:
        headers = ex.request_headers
        path = headers.get(":path", "")
        upstream_path, query_creds = strip_query_credentials(path)
        inject = self.credential.headers() if self.credential else {}
        if self.auth is not None:
            try:
                grant = await self._authenticate(headers, query_creds)
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
        for name in spellings_of(tuple(headers), self._strip, USER_SESSION_PREFIXES):
            if name not in inject:
                ex.remove_request_header(name)
                del headers[name]   # later policies read what goes upstream (the limit
                # keys: a client's own `x-gateway-subject` is not the forwarded one)
        for name, value in inject.items():
            ex.set_request_header(name, value)
        if self.auth is not None:
            headers.update(grant.headers)   # the forwarded claims; never the credential
        if upstream_path != path:
            ex.set_request_header(":path", upstream_path)
            headers[":path"] = upstream_path

    async def on_response_headers(self, ex: Context) -> None:
        """Where the gateway's credential was injected, the reply does not name the account
        it belongs to (`openai-organization`, `anthropic-organization-id`, ...)."""
        if self.credential is not None:
            strip_account_reply_headers(ex)

    def response_transform(self, ex: Context) -> BodyTransform | None:
        """An error to the injected key: a 401's body withheld, a 502 instead; another's
        withheld only if it names the key (`credential_transform`)."""
        if self.credential is None:
            return None
        return credential_transform(ex.status, self.credential.secret.value(),
                                    self.credential.provider)

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
    async def _authenticate(self, headers: Mapping[str, str],
                            query_creds: list[tuple[str, str]]) -> _Grant:
        assert self.auth is not None
        token, from_query = self._credential(headers, query_creds)
        if len(token) > self.auth.max_token_bytes:
            raise AuthError(f"credential is larger than {self.auth.max_token_bytes} bytes")
        if self.auth.jwt and not from_query and _looks_like_jwt(token):
            return await self._verify_jwt(token)
        if self.auth.api_keys is not None:
            key = self.auth.api_keys.lookup(token)
            if key is None:
                raise AuthError("API key is not valid")
            if key.revoked:
                raise AuthError("API key has been revoked")
            grant = self._key_grants.get(key.id)
            if grant is None:
                subject = namespaced(key.subject_namespace, key.subject)
                grant = self._key_grants[key.id] = self._grant(
                    Identity(subject, "api_key", key.id, {**key.claims, "sub": subject}))
            return grant
        raise AuthError("token is malformed (expected a JWT: three dot-separated parts)")

    def _query_key_allowed(self) -> bool:
        assert self.auth is not None
        return self.provider in QUERY_KEY_PROVIDERS and self.auth.api_keys is not None \
            and self.auth.header is None

    def _credential(self, headers: Mapping[str, str],
                    query_creds: list[tuple[str, str]]) -> tuple[str, bool]:
        """The presented credential, and whether it came from the `key` query parameter."""
        header = self._header_credential(headers)
        if header is not None:
            return header, False
        keys = {v for name, v in query_creds if name in ("key", "$key")}
        if keys and self._query_key_allowed():
            if len(keys) > 1:
                raise AuthError("more than one key query parameter")
            value = keys.pop().strip()
            if value:
                return value, True
        where = "Authorization: Bearer" + (f" or {self._native}" if self._native else "")
        if self._query_key_allowed():
            where += " or the key query parameter"
        raise AuthError(f"missing credential (send it as {where})")

    def _header_credential(self, headers: Mapping[str, str]) -> str | None:
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
        return None

    async def _verify_jwt(self, token: str) -> _Grant:
        assert self.auth is not None
        digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        now = self.clock()
        hit = self._cache.get(digest)
        if hit is not None:
            grant, exp, keys, keyset = hit
            # good until exp, and while the issuer's keys are the set it was verified
            # with: a key taken out of the JWKS (a compromised key retired) ends it
            if now < exp and (keys is None or _current(keys) is keyset):
                self._cache.move_to_end(digest)
                self.stats["cache_hits"] += 1
                return grant
            del self._cache[digest]
        header = read_header(token)
        provider = self._provider_for(token)
        verified = await provider.verify(token, header)
        claims = verified.claims
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub.strip():    # verify() refuses these already
            raise AuthError("token subject ('sub') must be a non-empty string")
        subject = namespaced(provider.namespace, sub)
        grant = self._grant(Identity(subject, "jwt", provider.name,
                                     {**claims, "sub": subject}))
        if verified.exp is not None and self.auth.cache_size:
            keys = provider.keys if verified.keyset is not None else None
            self._cache[digest] = (grant, verified.exp, keys, verified.keyset)
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
            if not any(json_equal(v, a) for v in values if v is not None for a in allowed):
                raise AuthError(f"claim {claim!r} does not allow this route", status=403)

    def _forwarded(self, identity: Identity) -> dict[str, str]:
        assert self.auth is not None
        out: dict[str, str] = {}
        for claim in self.auth.forward_claims:
            value = identity.claims.get(claim)
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


def json_equal(a: Any, b: Any) -> bool:
    """Two JSON values are the same value, their JSON types respected (Python's `==` holds
    `True == 1 == 1.0` and `False == 0`): a boolean equals only the same boolean, numbers
    compare by value (1 and 1.0 are one JSON number), strings only strings, arrays and
    objects member by member."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, int | float | list | tuple | dict) or isinstance(
            b, int | float | list | tuple | dict):
        return False
    return type(a) is type(b) and bool(a == b)


def _current(keys: Any) -> Any:
    """The key set an issuer's key source holds now; a remote one that is stale starts its
    refresh in the background (a cached token's check, too, must see a retired key go)."""
    tick = getattr(keys, "tick", None)
    if tick is not None:
        tick()
    return getattr(keys, "keyset", None)
